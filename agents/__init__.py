"""SkyScout agents package."""
