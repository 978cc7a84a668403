"""Unit tests of the agents."""
