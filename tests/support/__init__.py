"""Test support code: local stand-ins for external services (no network, no credentials)."""
