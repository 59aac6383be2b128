"""Reproducible training of the flight-delay model from Feast features (no Dagster here).

``dataset`` (labels and the point-in-time training set), ``split`` (time-ordered months), ``train``
(deterministic LightGBM and metrics) and ``tracking`` (the MLflow run). See ``docs/mlops.md``.
"""
