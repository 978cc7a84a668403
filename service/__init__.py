"""SkyScout service package."""
