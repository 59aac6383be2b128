"""``serve(settings, host, port)``: the prediction service under uvicorn (one worker), with a drain on SIGTERM.

On the first SIGTERM the service turns ``draining``: ``/readyz`` answers 503 while requests are still served
for ``serving.drain_seconds``, long enough for load balancers (a Kubernetes Service's endpoints, a proxy
polling readiness) to stop sending. Then uvicorn stops accepting connections, finishes the requests in
flight (at most ``serving.shutdown_timeout_seconds``), flushes the feature log and exits. A second signal
during the drain skips the rest of it. In the chart, the pod's preStop sleep and terminationGracePeriodSeconds
are set from the same budget (charts/hybridops/templates/deployment-inference.yaml).
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

import uvicorn

from hybridops.serving.app import create_app
from hybridops.serving.http_limits import limited_protocol
from hybridops.serving.metrics import use_process_local_values
from hybridops.serving.service import Service
from hybridops.settings import Settings

log = logging.getLogger(__name__)


class DrainingServer(uvicorn.Server):
    """uvicorn's server whose SIGTERM first drains (readiness 503, still serving) before it stops."""

    def __init__(self, config: uvicorn.Config, service: Service, drain_seconds: float) -> None:
        super().__init__(config)
        self.service = service
        self.drain_seconds = drain_seconds
        self._timer: threading.Timer | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig == signal.SIGTERM and self._timer is None and not self.should_exit and self.drain_seconds > 0:
            self.service.draining = True
            log.warning("SIGTERM: draining for %.1f s (readiness 503), then stopping", self.drain_seconds)
            # handle_exit only sets uvicorn's flags, which its loop reads on every tick: safe from a thread
            self._timer = threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame))
            self._timer.daemon = True
            self._timer.start()
            return
        if self._timer is not None:
            self._timer.cancel()
        self.service.draining = True
        super().handle_exit(sig, frame)


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the service until SIGTERM (drained, see the module) or SIGINT (the feature log is flushed)."""
    use_process_local_values()  # before the app builds its metrics
    app = create_app(settings, freeze_gc=True)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=max(1, round(settings.serving.shutdown_timeout_seconds)),
        # deadlines and a head bound uvicorn does not have (hybridops.serving.http_limits)
        http=limited_protocol(
            settings.serving.request_timeout_seconds,
            settings.serving.max_head_bytes,
            app.state.service.metrics,
        ),
    )
    DrainingServer(config, app.state.service, settings.serving.drain_seconds).run()
