"""open_clip model-config JSON files shipped with SkyScout (a package so that wheels carry them)."""
