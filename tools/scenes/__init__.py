"""Scenes: large georeferenced rasters read window by window (rasterio), cut into chips that stay in the file.

:mod:`~tools.scenes.raster` reads and checks headers, :mod:`~tools.scenes.chips` makes the grid, chip ids and
chip URIs, :mod:`~tools.scenes.stretch` turns scene values into 8-bit RGB, :mod:`~tools.scenes.read` reads
one chip, and :mod:`~tools.scenes.ingest` catalogs a scene and its chips.
"""
