"""Detection: chips scored for a query become probabilities, GeoJSON features, dissolved polygons and heat maps.

:mod:`~tools.detect.probability` (background softmax, Platt calibration), :mod:`~tools.detect.scoring`
(scores, probabilities, selection), :mod:`~tools.detect.features` (RFC 7946 features, merge, areas) and
:mod:`~tools.detect.raster` (the score COG).
"""
