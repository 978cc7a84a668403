"""SkyScout graph package."""
