"""The online prediction service: ``POST /predict`` on Feast online features and the registry's champion.

``create_app(settings)`` (:mod:`hybridops.serving.app`) builds the ASGI app; ``serve(settings, host, port)``
(:mod:`hybridops.serving.server`) runs it with uvicorn. Nothing here imports Dagster.
"""
