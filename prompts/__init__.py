"""SkyScout prompts package."""
