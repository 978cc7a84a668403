"""SkyScout tools package."""
