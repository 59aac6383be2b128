"""Commands that serve until interrupted: ``serve``, ``exporter``, ``monitor``, ``ui``.

Plain functions, registered on the ``hybridops`` app by :mod:`hybridops.cli.app`; heavy libraries are
imported inside them.
"""

from __future__ import annotations

from typing import Annotated

import typer


def serve(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of the inference service.")] = 8000,
) -> None:
    """Serve online predictions: Feast online features and the champion model in one hop."""
    from hybridops.cli.preflight import require_free_port
    from hybridops.serving.server import serve as run_server
    from hybridops.settings import load_settings

    settings = load_settings()
    require_free_port(host, port, "--port")
    typer.echo(
        f"inference service on http://{host}:{port} (POST /predict, /healthz, /readyz, /metrics, /docs)"
    )
    try:
        run_server(settings, host=host, port=port)
    except KeyboardInterrupt:  # Ctrl-C is how a person stops a service: uvicorn re-raises it once stopped
        typer.echo("inference service stopped")


def exporter(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port of /metrics.")] = 9464,
) -> None:
    """Serve Prometheus metrics of the whole platform (Dagster runs and checks, data quality, Feast, model)."""
    from hybridops.cli.preflight import require_free_port
    from hybridops.observability import serve_exporter
    from hybridops.settings import load_settings

    settings = load_settings()
    require_free_port(host, port, "--port")
    typer.echo(f"exporter on http://{host}:{port}/metrics; Ctrl-C stops it")
    serve_exporter(settings, host=host, port=port)


def monitor(
    exporter_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the exporter it starts.")
    ] = 9464,
    inference_url: Annotated[
        str, typer.Option(help="Inference service to scrape (its /metrics); empty for none.")
    ] = "http://127.0.0.1:8000",
    prometheus_port: Annotated[
        int, typer.Option(min=1, max=65535, help="Port of the Prometheus it starts.")
    ] = 9090,
    interval: Annotated[str, typer.Option(help="Scrape and rule evaluation interval.")] = "15s",
) -> None:
    """Start the exporter and a real Prometheus (Debian package `prometheus`) with the platform's alert rules."""
    from hybridops.observability.monitor import monitor as run_monitor
    from hybridops.settings import load_settings

    # A taken port is reported by the monitor itself, which stops whatever it started first.
    run_monitor(
        load_settings(),
        exporter_port=exporter_port,
        inference_url=inference_url or None,
        prometheus_port=prometheus_port,
        interval=interval,
    )


def ui(
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[
        int | None, typer.Option(min=1, max=65535, help="Port (default 3000 for Dagster, 5000 for MLflow).")
    ] = None,
    mlflow: Annotated[
        bool, typer.Option("--mlflow", help="Open the MLflow UI (runs, registry) instead.")
    ] = False,
) -> None:
    """Open the Dagster UI with its daemon (or with --mlflow the MLflow UI) on the state of ``hybridops run``.

    The daemon runs the sensors, the automation, the run queue and the backfills launched from the UI, as
    `dagster dev` does; Ctrl-C stops the webserver and the daemon.
    """
    import os

    from hybridops.cli.preflight import require_free_port
    from hybridops.orchestration.instance import (
        daemon_command,
        initialize_storage,
        mlflow_ui_command,
        webserver_command,
    )
    from hybridops.orchestration.supervise import Child, supervise
    from hybridops.settings import load_settings

    settings = load_settings()
    if mlflow:
        port = port or 5000
        require_free_port(host, port, "--port")
        command, env = mlflow_ui_command(settings, host=host, port=port)
        typer.echo(
            f"MLflow UI on http://{host}:{port} (store: {settings.mlflow_tracking_uri}); Ctrl-C stops it"
        )
        os.execvpe(command[0], command, {**os.environ, **env})
    port = port or 3000
    require_free_port(host, port, "--port")
    initialize_storage(settings)
    web, web_env = webserver_command(settings, host=host, port=port)
    daemon, daemon_env = daemon_command(settings)
    automation = "on" if settings.orchestration.automation else "off (HYBRIDOPS_ORCHESTRATION__AUTOMATION)"
    typer.echo(
        f"Dagster UI on http://{host}:{port} with its daemon (instance: {settings.dagster_home}; "
        f"automation {automation}); Ctrl-C stops both"
    )
    code = supervise(
        [Child("dagster-webserver", web, web_env), Child("dagster-daemon", daemon, daemon_env)],
        echo=lambda line: typer.echo(line, err=True),
    )
    if code:
        raise typer.Exit(code=code)
