"""``serve(settings, host, port)``: the prediction service under uvicorn (one worker)."""

from __future__ import annotations

import uvicorn

from hybridops.serving.app import create_app
from hybridops.serving.metrics import use_process_local_values
from hybridops.settings import Settings


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service until interrupted (SIGINT/SIGTERM flush the feature log and stop the model poll)."""
    use_process_local_values()  # before the app builds its metrics
    app = create_app(settings, freeze_gc=True)
    uvicorn.run(app, host=host, port=port, workers=1, log_level="warning", access_log=False)
