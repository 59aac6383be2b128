"""Benchmark: online inference, ``hybridops serve`` against the chained Feast + MLflow servers a user would
assemble, and the in-process floor.

Run: ``.venv/bin/python benchmarks/serving.py [--duration 20] [--quick] [--home DIR] [--out docs/performance.md]``

Setup: the real pipeline on 2013-01..2013-02 in a temp ``HYBRIDOPS_HOME`` (or ``--home`` reuses one that has
a champion and a materialized online store). Request bodies are real February flights from the warehouse
(1-row bodies: 500 distinct flights; 100-row bodies: 100 bodies of 100 random flights), cycled.

Measured in the same run, on the SQLite online store, then (unless ``--no-redis``) on a throwaway
``redis-server`` into which January and February are re-materialized:

* **hybridops**: ``hybridops serve`` (one uvicorn process), ``POST /predict``.
* **peer**: ``feast serve`` (1 worker) on a ``feature_store.yaml`` for the same registry and online store,
  ``mlflow models serve -m models:/flight_delay@champion --env-manager local`` and a thin aiohttp proxy
  (``POST /predict``: entity keys -> feast ``/get-online-features`` (feature service ``flight_delay_v1``,
  features matched by name) -> model input -> mlflow ``/invocations``).
* **floor**: the service's own read (``OnlineFeatureReader.read``: every view in one store round trip, on
  Feast's layout) + its predict, in this process, per-call latency, no HTTP.
* **feast floor**: the same with Feast's ``OnlineStore.online_read`` (one call per view) and
  ``Booster.predict``: what the service's read path was before it read all views at once.
* **harness floor**: the open-loop client against a do-nothing HTTP server (fixed reply, pinned like the
  servers): the latency the load generator, loopback and scheduler add by themselves.

Every server process is pinned to CPU 0 and every load generator to CPU 1 (2-core machine). Load: an open-loop
asyncio client (a subprocess of this script with uvloop; latency counted from each request's *scheduled* send
time, so queueing is not hidden; the note adds p50/p99 from the actual send, without the client's own
lateness) at a fixed rate (500 rps for 1 row, 50 rps for 100 rows), and ``wrk -t1 -c8``
(closed loop) for saturation throughput. Every load loop is bounded in time and count.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
LUA = HERE / "serving_bodies.lua"
SERVER_CPUS = {0}
LOAD_CPUS = {1}
ONE_ROW_RATE = 500
HUNDRED_ROW_RATE = 50
GOAL_P99_1 = 3.0
GOAL_P99_100 = 15.0
GOAL_RATIO = 3.0


# --- helpers ---------------------------------------------------------------------------------------------
def cpus(wanted: set[int]) -> set[int]:
    """``wanted`` when this machine has those CPUs, else every CPU (no pinning on a 1-core box)."""
    available = os.sched_getaffinity(0)
    return wanted if wanted <= available and len(available) > 1 else available


def pin(wanted: set[int]):
    target = cpus(wanted)
    return lambda: os.sched_setaffinity(0, target)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine() -> str:
    cpu = "unknown CPU"
    with suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}"


def tree_rss_mb(pid: int) -> float:
    """VmRSS of a process and all its descendants (MiB)."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return float("nan")
    total = 0
    for proc in procs:
        with suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total / 2**20


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, log: Path) -> None:
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: server exited ({proc.returncode}); log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status < 500:
                    return
        except urllib.error.HTTPError as exc:
            if exc.code < 500:
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f} s; log:\n{log.read_text()[-3000:]}")


@dataclass
class Server:
    name: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, cmd: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        handle = log.open("ab")
        proc = subprocess.Popen(
            cmd, env=env, stdout=handle, stderr=subprocess.STDOUT, preexec_fn=pin(SERVER_CPUS),
            start_new_session=True,
        )  # fmt: skip
        self.procs.append(proc)
        return proc

    def rss(self) -> float:
        return sum(tree_rss_mb(p.pid) for p in self.procs)

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.procs.clear()


# --- request bodies --------------------------------------------------------------------------------------
def write_bodies(settings: Any, folder: Path) -> dict[int, Path]:
    """1-row and 100-row bodies of real February 2013 flights (tailnum known), one JSON body per line."""
    import duckdb

    with duckdb.connect(str(settings.warehouse_db), read_only=True) as con:
        rows = con.execute(
            """select carrier, flight, origin, dest, tailnum, sched_dep_local from fct_flights
               where month_key = '2013-02' and tailnum is not null order by flight_id"""
        ).fetchall()
    flights = [
        {"carrier": c, "flight": int(f), "origin": o, "dest": d, "tailnum": t, "sched_dep": s.isoformat()}
        for c, f, o, d, t, s in rows
    ]
    rng = random.Random(0)
    out = {}
    for size, count in ((1, 500), (100, 100)):
        path = folder / f"bodies_{size}.jsonl"
        with path.open("w") as fh:
            for _ in range(count):
                fh.write(json.dumps({"flights": rng.sample(flights, size)}, separators=(",", ":")) + "\n")
        out[size] = path
    print(f"bodies: {len(flights)} February flights; 500 x 1 row, 100 x 100 rows", flush=True)
    return out


# --- load generators -------------------------------------------------------------------------------------
@dataclass
class Result:
    target: str
    rows: int
    mode: str
    requests: int
    seconds: float
    p50: float
    p99: float
    max: float
    errors: int
    note: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def run_wrk(url: str, bodies: Path, duration: float, conns: int) -> dict[str, float]:
    env = {**os.environ, "BODIES": str(bodies), "WRK_PATH": "/predict"}
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{max(1, round(duration))}s", "--timeout", "5s", "--latency"]
    cmd += ["-s", str(LUA), url]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, timeout=duration + 60, preexec_fn=pin(LOAD_CPUS)
    )
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk failed: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    return {k: float(v) for k, v in (kv.split("=") for kv in line.split()[1:])}


def saturation(target: str, url: str, bodies: Path, rows: int, duration: float) -> Result:
    r = run_wrk(url, bodies, duration, 8)
    errors = int(r["non2xx"] + r["connect"] + r["read"] + r["write"] + r["timeout"])
    return Result(
        target, rows, "saturation (wrk -t1 -c8)", int(r["requests"]), r["duration_us"] / 1e6,
        r["p50_us"] / 1e3, r["p99_us"] / 1e3, r["max_us"] / 1e3, errors,
    )  # fmt: skip


def fixed_rate(target: str, url: str, bodies: Path, rows: int, rate: int, duration: float) -> Result:
    cmd = [sys.executable, __file__, "_openloop", url, str(bodies), str(rate), str(duration)]
    out = subprocess.run(
        cmd, capture_output=True, text=True, timeout=duration + 90, preexec_fn=pin(LOAD_CPUS)
    )
    if out.returncode != 0:
        raise RuntimeError(f"open-loop client failed: {out.stderr[-3000:]}")
    r = json.loads(out.stdout.strip().splitlines()[-1])
    note = (
        f"dispatch wait p99 {r['lag_p99_ms']:.2f} ms; from actual send p50 {r['sent_p50_ms']:.2f} / "
        f"p99 {r['sent_p99_ms']:.2f} ms"
    )
    if r["statuses"]:
        note += f"; statuses {r['statuses']}"
    return Result(
        target, rows, f"open loop {rate} rps", r["completed"], r["seconds"], r["p50_ms"], r["p99_ms"],
        r["max_ms"], r["errors"], note,
    )  # fmt: skip


def openloop_main(url: str, bodies_path: str, rate: int, duration: float) -> None:
    """Open-loop client: request i is due at start + i/rate; latency counts from that due time."""
    with suppress(ImportError):
        import uvloop

        uvloop.install()
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    host, port, path = parts.hostname or "127.0.0.1", parts.port or 80, parts.path or "/"
    bodies = [line.strip().encode() for line in Path(bodies_path).read_text().splitlines() if line.strip()]
    requests = [
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(b)}\r\n\r\n"
        ).encode()
        + b
        for b in bodies
    ]
    total = int(rate * duration)
    timeout = 5.0

    async def read_response(reader: asyncio.StreamReader) -> int:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        length = 0
        for line in lines[1:]:
            if line.lower().startswith("content-length:"):
                length = int(line.split(":", 1)[1])
            elif line.lower().startswith("transfer-encoding:"):
                raise RuntimeError("chunked responses are not supported")
        await reader.readexactly(length)
        return status

    async def main() -> dict[str, Any]:
        pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        conns = 64
        for _ in range(conns):
            pool.put_nowait(await asyncio.open_connection(host, port))
        latencies: list[float] = []
        from_send: list[float] = []  # excludes the client's own lateness (timer granularity, its CPU)
        lags: list[float] = []
        statuses: Counter[int] = Counter()
        errors = 0

        async def one(i: int, due: float) -> None:
            nonlocal errors
            conn = await pool.get()
            reader, writer = conn
            try:
                sent = time.perf_counter()
                lags.append(sent - due)
                writer.write(requests[i % len(requests)])
                status = await asyncio.wait_for(read_response(reader), timeout)
                done = time.perf_counter()
                latencies.append(done - due)
                from_send.append(done - sent)
                statuses[status] += 1
                pool.put_nowait(conn)
            except Exception:
                errors += 1
                writer.close()
                with suppress(OSError):
                    pool.put_nowait(await asyncio.open_connection(host, port))

        start = time.perf_counter() + 0.05
        tasks = []
        for i in range(total):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.ensure_future(one(i, due)))
        _, pending = await asyncio.wait(tasks, timeout=timeout + 5)
        for task in pending:
            task.cancel()
        seconds = time.perf_counter() - start
        errors += len(pending)
        bad = sum(n for s, n in statuses.items() if not 200 <= s < 300)
        ms = sorted(x * 1e3 for x in latencies) or [float("nan")]
        lag = sorted(x * 1e3 for x in lags) or [float("nan")]
        sent_ms = sorted(x * 1e3 for x in from_send) or [float("nan")]

        def q(values: list[float], p: float) -> float:
            return values[min(len(values) - 1, int(p * len(values)))]

        return {
            "completed": len(latencies), "seconds": seconds, "p50_ms": q(ms, 0.5), "p99_ms": q(ms, 0.99),
            "max_ms": ms[-1], "errors": errors + bad, "lag_p99_ms": q(lag, 0.99),
            "sent_p50_ms": q(sent_ms, 0.5), "sent_p99_ms": q(sent_ms, 0.99),
            "statuses": {str(s): n for s, n in statuses.items() if not 200 <= s < 300},
        }  # fmt: skip

    print(json.dumps(asyncio.run(main())))


# --- the harness floor: a server that does nothing ------------------------------------------------------
def noop_server_main(port: int) -> None:
    """HTTP/1.1 keep-alive server answering every request with a fixed 200 JSON: what the load generator,
    loopback and the scheduler cost by themselves (the floor under every latency of this benchmark)."""
    with suppress(ImportError):
        import uvloop

        uvloop.install()
    body = b'{"predictions":[]}'
    reply = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
        len(body),
        body,
    )

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line[:15].lower() == b"content-length:":
                        await reader.readexactly(int(line[15:]))
                writer.write(reply)
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def main() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def harness_floor(work: Path, bodies: dict[int, Path], duration: float) -> list[Result]:
    server = Server("harness floor")
    port = free_port()
    log = work / "noop-server.log"
    proc = server.start([sys.executable, __file__, "_noop_server", str(port)], dict(os.environ), log)
    try:
        url = f"http://127.0.0.1:{port}/predict"
        wait_http(url, proc, 30, log)
        results = [
            fixed_rate("harness floor", url, bodies[1], 1, ONE_ROW_RATE, duration),
            fixed_rate("harness floor", url, bodies[100], 100, HUNDRED_ROW_RATE, duration),
        ]
    finally:
        server.stop()
    for r in results:
        r.note += "; a do-nothing server (fixed reply): the load generator's and loopback's own latency"
        print(
            f"  harness floor {r.rows:>3} rows {r.mode:20} p50 {r.p50:7.2f}  p99 {r.p99:8.2f} ms", flush=True
        )
    return results


# --- the peer's thin client --------------------------------------------------------------------------------
def peer_proxy_main(port: int, feast_url: str, mlflow_url: str, columns_path: str) -> None:
    """``POST /predict`` like hybridops: feast /get-online-features then mlflow /invocations."""
    import aiohttp
    from aiohttp import web

    from hybridops.features.store import ENTITY_COLUMNS
    from hybridops.serving.features import entity_row, local_to_unix

    columns = json.loads(Path(columns_path).read_text())
    keys = ENTITY_COLUMNS

    async def on_startup(app: web.Application) -> None:
        connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=60)
        app["session"] = aiohttp.ClientSession(connector=connector)

    async def on_cleanup(app: web.Application) -> None:
        await app["session"].close()

    async def predict(request: web.Request) -> web.Response:
        session: aiohttp.ClientSession = request.app["session"]
        flights = json.loads(await request.read())["flights"]
        rows = [
            entity_row(
                f["carrier"], f["origin"], f["dest"], f.get("tailnum"), datetime.fromisoformat(f["sched_dep"])
            )
            for f in flights
        ]
        entities = {k: [r[k] if r[k] is not None else "" for r in rows] for k in keys}
        # the request fields of the service's on-demand view flight_request (departure: Unix seconds)
        entities |= {
            "request_carrier": [f["carrier"] for f in flights],
            "request_origin": [f["origin"] for f in flights],
            "request_dest": [f["dest"] for f in flights],
            "request_sched_dep": [
                int(local_to_unix(datetime.fromisoformat(f["sched_dep"]))) for f in flights
            ],
        }
        payload = {"feature_service": "flight_delay_v1", "entities": entities}
        async with session.post(feast_url, json=payload) as resp:
            if resp.status != 200:
                return web.Response(status=502, text=f"feast {resp.status}: {(await resp.text())[:300]}")
            features = await resp.json()
        by_name = {
            name: result["values"]
            for name, result in zip(features["metadata"]["feature_names"], features["results"], strict=True)
        }
        data = [[by_name[c][i] for c in columns] for i in range(len(flights))]
        body = {"dataframe_split": {"columns": columns, "data": data}}
        async with session.post(mlflow_url, json=body) as resp:
            if resp.status != 200:
                return web.Response(status=502, text=f"mlflow {resp.status}: {(await resp.text())[:300]}")
            scored = await resp.json()
        out = {"predictions": [{"delay_probability": float(p)} for p in scored["predictions"]]}
        return web.json_response(out)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=8 * 2**20)
    app.router.add_post("/predict", predict)
    app.router.add_get("/healthz", healthz)
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# --- the three subjects ----------------------------------------------------------------------------------
def feast_yaml(settings: Any, folder: Path) -> Path:
    """A feature_store.yaml for the same registry and online store (Feast's default registry cache ttl)."""
    import yaml

    from hybridops.features.store import online_store_config, registry_config

    registry = registry_config(settings)
    config = {
        "project": settings.feast.project,
        "provider": "local",
        "registry": {"registry_type": registry["registry_type"], "path": registry["path"]},
        "online_store": online_store_config(settings.feast.online_store, settings),
        "offline_store": {"type": settings.feast.offline_store},
        "entity_key_serialization_version": 3,
    }
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "feature_store.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    return folder


def base_env(settings: Any) -> dict[str, str]:
    env = {**os.environ, "HYBRIDOPS_HOME": str(settings.home_dir), "PYTHONUNBUFFERED": "1"}
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # mlflow serve execs `uvicorn` from PATH
    env["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    store = settings.feast.online_store
    env["HYBRIDOPS_FEAST__ONLINE_STORE__TYPE"] = store.type
    if store.type == "redis":
        env["HYBRIDOPS_FEAST__ONLINE_STORE__CONNECTION_STRING"] = store.connection_string
    return env


def start_hybridops(settings: Any, work: Path) -> tuple[Server, str]:
    server = Server("hybridops")
    port = free_port()
    log = work / "hybridops-serve.log"
    proc = server.start([str(BIN / "hybridops"), "serve", "--port", str(port)], base_env(settings), log)
    wait_http(f"http://127.0.0.1:{port}/readyz", proc, 120, log)
    return server, f"http://127.0.0.1:{port}/predict"


def start_peer(settings: Any, work: Path, columns: list[str]) -> tuple[Server, str]:
    server = Server("peer")
    env = base_env(settings)
    repo = feast_yaml(settings, work / f"feast_repo_{settings.feast.online_store.type}")
    fport, mport, pport = free_port(), free_port(), free_port()
    try:
        flog, mlog, plog = work / "feast-serve.log", work / "mlflow-serve.log", work / "peer-proxy.log"
        fproc = server.start(
            [str(BIN / "feast"), "-c", str(repo), "serve", "-p", str(fport), "--workers", "1",
             "--no-access-log", "--max-requests", "0"], env, flog,
        )  # fmt: skip
        mproc = server.start(
            [str(BIN / "mlflow"), "models", "serve", "-m", "models:/flight_delay@champion", "--env-manager",
             "local", "-p", str(mport), "--workers", "1"], {**env, "UVICORN_ACCESS_LOG": "false"}, mlog,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{fport}/health", fproc, 180, flog)
        wait_http(f"http://127.0.0.1:{mport}/ping", mproc, 180, mlog)
        cols = work / "model_columns.json"
        cols.write_text(json.dumps(columns))
        pproc = server.start(
            [sys.executable, __file__, "_peer_proxy", str(pport), f"http://127.0.0.1:{fport}/get-online-features",
             f"http://127.0.0.1:{mport}/invocations", str(cols)], env, plog,
        )  # fmt: skip
        wait_http(f"http://127.0.0.1:{pport}/healthz", pproc, 60, plog)
    except BaseException:
        server.stop()
        raise
    return server, f"http://127.0.0.1:{pport}/predict"


def check_answers(url: str, body_path: Path, rows: int) -> None:
    """One real request must return ``rows`` predictions (a wrong setup must not be benchmarked)."""
    import urllib.request

    body = body_path.read_text().splitlines()[0].encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        answer = json.loads(resp.read())
    if len(answer["predictions"]) != rows:
        raise RuntimeError(f"{url}: {len(answer['predictions'])} predictions for {rows} flights")


def measure_server(
    target: str, url: str, server: Server, bodies: dict[int, Path], duration: float
) -> tuple[list[Result], tuple[float, float]]:
    for rows in (1, 100):
        check_answers(url, bodies[rows], rows)
    run_wrk(url, bodies[1], min(3.0, duration), 8)  # warm-up
    rss_before = server.rss()
    results = [
        fixed_rate(target, url, bodies[1], 1, ONE_ROW_RATE, duration),
        saturation(target, url, bodies[1], 1, duration),
        fixed_rate(target, url, bodies[100], 100, HUNDRED_ROW_RATE, duration),
        saturation(target, url, bodies[100], 100, duration),
    ]
    for r in results:
        print(
            f"  {target:9} {r.rows:>3} rows {r.mode:26} {r.rps:8.1f} rps  p50 {r.p50:7.2f}  p99 {r.p99:8.2f} ms"
            f"  errors {r.errors}",
            flush=True,
        )
    return results, (rss_before, server.rss())


def feast_reader(settings: Any) -> Any:
    """``rows -> feature matrix`` through Feast's ``OnlineStore.online_read``, one call per feature view."""
    import numpy as np
    from feast.protos.feast.types.EntityKey_pb2 import EntityKey
    from feast.protos.feast.types.Value_pb2 import Value

    from hybridops.features.store import feature_names, feature_store, load_definitions_module

    module = load_definitions_module()
    store = feature_store(settings)
    online = store._get_provider().online_store
    names = feature_names()
    views = [
        (store.get_feature_view(view), module.VIEW_ENTITY[view], list(features))
        for view, features in module.VIEW_FEATURES.items()
    ]

    def read(rows: list[dict[str, str | None]]) -> Any:
        matrix = np.full((len(rows), len(names)), np.nan)
        for view, entity, features in views:
            keys = list(dict.fromkeys(row[entity] for row in rows if row[entity] is not None))
            protos = [EntityKey(join_keys=[entity], entity_values=[Value(string_val=k)]) for k in keys]
            found: dict[str, list[float | None]] = {}
            replies = online.online_read(store.config, view, protos, list(features))
            for key, (_, values) in zip(keys, replies, strict=True):
                if values:
                    kinds = [(values[f], values[f].WhichOneof("val")) if f in values else (None, None)
                             for f in features]  # fmt: skip
                    found[key] = [None if kind is None else float(getattr(v, kind)) for v, kind in kinds]
            for i, row in enumerate(rows):
                for f, value in zip(features, found.get(row[entity] or "", ()), strict=False):
                    if value is not None:
                        matrix[i, names.index(f)] = value
        return matrix

    return read


def floor(settings: Any, bodies: dict[int, Path], quick: bool) -> list[Result]:
    """The service's read + predict, then Feast's online_read + Booster.predict, in this process, per call."""
    import numpy as np

    from hybridops.features.request import DEPARTED_AT, request_matrix, served_columns
    from hybridops.features.store import feature_names
    from hybridops.serving.features import OnlineFeatureReader, entity_row, local_to_unix
    from hybridops.serving.metrics import ServingMetrics
    from hybridops.serving.model_holder import ModelHolder

    saved = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus(SERVER_CPUS))
    try:
        reader = OnlineFeatureReader(settings)
        holder = ModelHolder(settings, served_columns(), ServingMetrics())
        departed = feature_names().index(DEPARTED_AT)
        holder.load_initial()
        model = holder.current
        assert model is not None, holder.last_error
        read_with_feast = feast_reader(settings)

        # A batch: the flights' entity rows and their request columns (as the service takes them from
        # the body); both readers add the request features as the service does.
        def ours(batch: tuple[list[dict[str, str | None]], Any]) -> Any:
            rows, codes = batch
            store = reader.read(rows).matrix
            return model.predict(np.hstack((store, request_matrix(*codes, store[:, departed].copy()))))

        def feasts(batch: tuple[list[dict[str, str | None]], Any]) -> Any:
            rows, codes = batch
            store = read_with_feast(rows)
            matrix = np.hstack((store, request_matrix(*codes, store[:, departed].copy())))
            return model.booster.predict(matrix[:, model.columns], num_threads=1)

        subjects = [
            ("floor", ours, "service read (all views, one round trip) + predict, no HTTP"),
            ("feast floor", feasts, "Feast online_read per view + Booster.predict, no HTTP"),
        ]
        out = []
        for rows, calls in ((1, 300 if quick else 3000), (100, 50 if quick else 500)):
            batches = []
            for line in bodies[rows].read_text().splitlines():
                flights = json.loads(line)["flights"]
                departures = [datetime.fromisoformat(f["sched_dep"]) for f in flights]
                rows_of = [
                    entity_row(f["carrier"], f["origin"], f["dest"], f["tailnum"], d)
                    for f, d in zip(flights, departures, strict=True)
                ]
                codes = (
                    [f["carrier"] for f in flights],
                    [f["origin"] for f in flights],
                    [f["dest"] for f in flights],
                    np.array([local_to_unix(d) for d in departures]),
                )
                batches.append((rows_of, codes))  # fmt: skip
            for target, call, note in subjects:
                for batch in batches[:20]:  # warm-up
                    call(batch)
                times = []
                started = time.perf_counter()
                for i in range(calls):
                    t0 = time.perf_counter()
                    call(batches[i % len(batches)])
                    times.append((time.perf_counter() - t0) * 1e3)
                seconds = time.perf_counter() - started
                times.sort()
                out.append(
                    Result(
                        target,
                        rows,
                        "in-process, 1 thread",
                        calls,
                        seconds,
                        statistics.median(times),
                        times[min(len(times) - 1, int(0.99 * len(times)))],
                        times[-1],
                        0,
                        note,
                    )
                )
        reader.close()
        return out
    finally:
        os.sched_setaffinity(0, saved)


# --- redis ---------------------------------------------------------------------------------------------
def start_redis(work: Path) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    folder = work / "redis"
    folder.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder), "--save", "",
         "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=pin(SERVER_CPUS),
    )  # fmt: skip
    deadline = time.monotonic() + 10
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, port
        except OSError:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("redis-server did not start") from None
            time.sleep(0.05)


def redis_settings(settings: Any, port: int) -> Any:
    from hybridops.features.store import feature_store, materialize_month
    from hybridops.settings import RedisOnlineStore

    feast = settings.feast.model_copy(
        update={"online_store": RedisOnlineStore(connection_string=f"127.0.0.1:{port}")}
    )
    redis = settings.model_copy(update={"feast": feast})
    store = feature_store(redis)
    started = time.perf_counter()
    counts: Counter[str] = Counter()
    for month in ("2013-01", "2013-02"):  # in order: the online upsert keeps the last written value
        counts.update(materialize_month(store, month))
    print(
        f"redis: re-materialized {sum(counts.values())} entity rows in {time.perf_counter() - started:.1f} s",
        flush=True,
    )
    return redis


# --- report ----------------------------------------------------------------------------------------------
def ms(x: float) -> str:
    return f"{x:.2f}" if x < 100 else f"{x:.0f}"


def find(results: list[Result], target: str, rows: int, mode_prefix: str) -> Result | None:
    return next(
        (r for r in results if r.target == target and r.rows == rows and r.mode.startswith(mode_prefix)),
        None,
    )


def report(
    sections: dict[str, tuple[list[Result], dict[str, tuple[float, float]]]],
    duration: float,
    took: float,
    load_start: tuple[float, float, float],
) -> str:
    lines = [
        "| store | subject | rows/request | load | requests | throughput (rps) | p50 ms | p99 ms | max ms "
        "| non-2xx + errors | server RSS MiB before → after | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    goals: list[str] = []
    ratios: list[str] = []
    for store, (results, rss) in sections.items():
        for r in results:
            mem = rss.get(r.target)
            mem_text = f"{mem[0]:.0f} → {mem[1]:.0f}" if mem else "—"
            lines.append(
                f"| {store} | {r.target} | {r.rows} | {r.mode} | {r.requests} | {r.rps:,.0f} | {ms(r.p50)} | "
                f"{ms(r.p99)} | {ms(r.max)} | {r.errors} | {mem_text} | {r.note} |"
            )
        h1, p1 = find(results, "hybridops", 1, "sat"), find(results, "peer", 1, "sat")
        h100, p100 = find(results, "hybridops", 100, "sat"), find(results, "peer", 100, "sat")
        o1, o100 = find(results, "hybridops", 1, "open"), find(results, "hybridops", 100, "open")
        q1, q100 = find(results, "peer", 1, "open"), find(results, "peer", 100, "open")
        if h1 and p1 and h100 and p100 and p1.rps and p100.rps:
            ratios.append(
                f"* {store}: max throughput hybridops / peer = {h1.rps / p1.rps:.1f}x (1 row), "
                f"{h100.rps / p100.rps:.1f}x (100 rows)"
                + (
                    f"; p99 at {ONE_ROW_RATE} rps peer / hybridops = {q1.p99 / o1.p99:.1f}x"
                    if q1 and o1
                    else ""
                )
                + (
                    f"; p99 at {HUNDRED_ROW_RATE} rps (100 rows) peer / hybridops = {q100.p99 / o100.p99:.1f}x"
                    if q100 and o100
                    else ""
                )
            )
        if o1:
            met = o1.p99 <= GOAL_P99_1
            goals.append(
                f"* {store}: 1 row p99 ≤ {GOAL_P99_1:g} ms at {ONE_ROW_RATE} rps: "
                f"**{'met' if met else 'MISSED'}** ({ms(o1.p99)} ms)"
            )
        if h1 and p1:
            ratio = h1.rps / p1.rps if p1.rps else float("inf")
            goals.append(
                f"* {store}: max throughput ≥ {GOAL_RATIO:g}x the chained peer (1 row): "
                f"**{'met' if ratio >= GOAL_RATIO else 'MISSED'}** ({ratio:.1f}x)"
            )
        if o100:
            met = o100.p99 <= GOAL_P99_100
            goals.append(
                f"* {store}: 100 rows p99 ≤ {GOAL_P99_100:g} ms (at {HUNDRED_ROW_RATE} rps): "
                f"**{'met' if met else 'MISSED'}** ({ms(o100.p99)} ms)"
            )
        if o1 and o100:
            errs = o1.errors + o100.errors
            goals.append(
                f"* {store}: zero errors at the target rates: **{'met' if errs == 0 else 'MISSED'}** ({errs})"
            )
    text = "\n".join(lines)
    text += "\n\nRatios (same run):\n\n" + "\n".join(ratios) if ratios else ""
    text += "\n\nGoals:\n\n" + "\n".join(goals) + "\n"
    text += (
        f"\n{duration:g} s per load run; benchmark wall time {took / 60:.1f} min. "
        f"Load average at the start: {', '.join(f'{x:.2f}' for x in load_start)}; at the end: "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (the benchmark's own servers and clients add about "
        "2 while they run).\n"
    )
    return text


def append_doc(out: Path, table: str, args: argparse.Namespace) -> None:
    """Replace (or add) the ``## Online inference`` section of ``out``, keeping every other section."""
    heading = "## Online inference"
    body = (
        f"{heading}\n\n"
        f"Measured by `.venv/bin/python benchmarks/serving.py --duration {args.duration:g}"
        f"{' --quick' if args.quick else ''}` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; machine: "
        f"{machine()} (`nproc` = {os.cpu_count()}).\n\n"
        "Servers pinned to CPU 0, load generators to CPU 1. *hybridops* = `hybridops serve` (1 uvicorn "
        "process). *peer* = `feast serve` (1 worker, same registry and online store) + `mlflow models serve "
        "-m models:/flight_delay@champion --env-manager local` (1 worker) + a thin aiohttp proxy chaining "
        "them (RSS is the sum of the three process trees). *floor* = the service's own read (every feature "
        "view in one store round trip, Feast's layout and serialization) + its predict, in one process, per "
        "call, no HTTP; *feast floor* = Feast's `online_read` (one call per view) + `Booster.predict`, the "
        "same way. *harness floor* = the same open-loop client against a do-nothing HTTP server (fixed "
        "reply): what the load generator, loopback and scheduler cost by themselves. Open-loop rows: "
        "asyncio+uvloop client, latency from each request's scheduled send time (the note adds it from the "
        "actual send); saturation rows: `wrk -t1 -c8` (closed loop). "
        "Bodies: real February 2013 flights (tailnum known), 500 distinct 1-row bodies and 100 bodies "
        "of 100 random flights, cycled.\n\n"
        f"{table}\n"
        "<!-- serving-notes -->\n"
    )
    text = out.read_text() if out.exists() else "# Performance\n"
    if heading in text:
        start = text.index(heading)
        nxt = text.find("\n## ", start + len(heading))
        notes = ""
        old = text[start : nxt if nxt >= 0 else len(text)]
        if "<!-- serving-notes -->" in old:  # keep hand-written analysis below the marker
            notes = old.split("<!-- serving-notes -->", 1)[1].rstrip("\n")
        text = text[:start] + body + notes + ("\n" + text[nxt:] if nxt >= 0 else "\n")
    else:
        text = text.rstrip("\n") + "\n\n" + body
    out.write_text(text)


# --- main --------------------------------------------------------------------------------------------------
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="Seconds per load run.")
    parser.add_argument("--quick", action="store_true", help="3 s runs, SQLite only, short floor.")
    parser.add_argument("--home", type=Path, help="Reuse a home with a champion and an online store.")
    parser.add_argument("--no-redis", action="store_true", help="Skip the Redis runs.")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "performance.md")
    parser.add_argument("--no-doc", action="store_true", help="Print the table only.")
    args = parser.parse_args()
    if args.quick:
        args.duration = min(args.duration, 3.0)
        args.no_redis = True
    for tool in ("wrk",) + (() if args.no_redis else ("redis-server",)):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is not installed (apt-get install {tool})")

    from hybridops.registry.models import load_model
    from hybridops.settings import Settings

    load_start = os.getloadavg()
    print(f"load average at the start: {', '.join(f'{x:.2f}' for x in load_start)}", flush=True)
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="hybridops-serving-bench-"))
    home = args.home
    if home is None:
        from hybridops.orchestration.runner import run_pipeline

        home = work / "home"
        print(f"pipeline on 2013-01..2013-02 into {home} ...", flush=True)
        t0 = time.perf_counter()
        summary = run_pipeline(Settings(home=home), ["2013-01", "2013-02"])
        print(f"pipeline: {summary.status} in {time.perf_counter() - t0:.0f} s", flush=True)
        if summary.status != "success":
            sys.exit("the pipeline failed; nothing to benchmark")
    settings = Settings(home=home)
    os.environ["MLFLOW_TRACKING_URI"] = settings.mlflow_tracking_uri
    columns = load_model(settings, f"{settings.mlflow.model_name}@champion").booster.feature_name()
    bodies = write_bodies(settings, work)

    stores = [("SQLite", settings)]
    redis_proc = None
    sections: dict[str, tuple[list[Result], dict[str, tuple[float, float]]]] = {}
    try:
        if not args.no_redis:
            redis_proc, port = start_redis(work)
            stores.append(("Redis", redis_settings(settings, port)))
        for label, store_settings in stores:
            print(f"== {label} ==", flush=True)
            results: list[Result] = []
            rss: dict[str, tuple[float, float]] = {}
            for target in ("hybridops", "peer"):
                if target == "peer":
                    server, url = start_peer(store_settings, work, columns)
                else:
                    server, url = start_hybridops(store_settings, work)
                try:
                    found, rss[target] = measure_server(target, url, server, bodies, args.duration)
                    results += found
                finally:
                    server.stop()
            results += floor(store_settings, bodies, args.quick)
            if label == "SQLite":  # the harness does not depend on the store: measured once
                results += harness_floor(work, bodies, args.duration)
            sections[label] = (results, rss)
    finally:
        if redis_proc is not None:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
    table = report(sections, args.duration, time.perf_counter() - started, load_start)
    print()
    print(table)
    if not args.no_doc:
        append_doc(args.out, table, args)
        print(f"appended to {args.out}")
    print(f"logs in {work}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_openloop":
        openloop_main(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_noop_server":
        noop_server_main(int(sys.argv[2]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_peer_proxy":
        peer_proxy_main(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
    else:
        sys.exit(main())
