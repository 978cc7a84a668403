"""Distributed engines: Ray Data jobs for indexing and captioning (the optional ``skyscout[ray]`` extra)."""
