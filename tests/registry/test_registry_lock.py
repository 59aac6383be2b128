"""The alias lock (hybridops.registry.lock) against a real ``mlflow server`` on PostgreSQL, as deployed.

Proves: processes racing for the lock hold it one at a time, in the order of their tickets (FIFO); a delete
or a create that MLflow's HTTP client sends again (a proxy answers 503 after the server committed them)
neither frees another process's hold nor deadlocks; a dead holder's ticket is taken over, and two waiters
taking it over at once do not both hold; the timeout error is clear; a lock model left by the previous
design (no versions) does not stand in the way; a ticket number is never given twice after a delete.
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow_server import MlflowServer, mlflow_server

from hybridops.errors import HybridopsError
from hybridops.registry.lock import HOLDER_TAG, TICKET_SOURCE, alias_lock, lock_name, release, tickets
from hybridops.settings import Settings

# Minutes of processes starting MLflow clients on a loaded machine: in the group CI runs after `make test`.
pytestmark = pytest.mark.slow

WORKER = Path(__file__).with_name("lock_worker.py")
_models = itertools.count(1)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, postgresql_url: str) -> Iterator[MlflowServer]:
    with mlflow_server(tmp_path_factory.mktemp("lock-mlflow"), backend_uri=postgresql_url) as running:
        yield running


def _client(url: str) -> MlflowClient:
    return MlflowClient(tracking_uri=url, registry_uri=url)


def _model() -> str:
    return f"locked_{next(_models)}"


def test_a_ticket_number_is_never_given_twice(server: MlflowServer, registry_home: Path) -> None:
    """What the lock rests on, in both stores the project uses (PostgreSQL behind a server, SQLite)."""
    sqlite = Settings(home=registry_home).mlflow_tracking_uri
    for client in (_client(server.url), _client(sqlite)):
        name = lock_name(_model())
        client.create_registered_model(name)
        made = [int(client.create_model_version(name, TICKET_SOURCE).version) for _ in range(3)]
        assert made == [1, 2, 3]
        client.delete_model_version(name, "3")  # the highest: a store counting live rows would give 3 again
        client.delete_model_version(name, "1")
        with pytest.raises(MlflowException) as gone:
            client.delete_model_version(name, "3")
        assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert int(client.create_model_version(name, TICKET_SOURCE).version) == 4
        assert [t.version for t in tickets(client, name)] == [2, 4]


def test_processes_hold_the_lock_one_at_a_time_in_ticket_order(server: MlflowServer, tmp_path: Path) -> None:
    model, processes, rounds = _model(), 6, 4
    go = tmp_path / "go"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKER.parent), *sys.path])}
    jobs = []
    for i in range(processes):
        args = {"tracking_uri": server.url, "model": model, "rounds": rounds, "hold": 0.05, "go": str(go),
                "ready": str(tmp_path / f"ready-{i}"), "out": str(tmp_path / f"out-{i}.json")}  # fmt: skip
        log = (tmp_path / f"worker-{i}.log").open("wb")
        jobs.append((subprocess.Popen([sys.executable, str(WORKER), json.dumps(args)], stdout=log,
                                      stderr=log, env=env), log))  # fmt: skip
    try:
        deadline = time.monotonic() + 600  # process starts and MLflow's imports, on a loaded machine
        while not all((tmp_path / f"ready-{i}").exists() for i in range(processes)):
            for n, (job, _) in enumerate(jobs):
                assert job.poll() is None, (tmp_path / f"worker-{n}.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the workers did not get ready"
            time.sleep(0.05)
        started = time.monotonic()
        go.touch()
        for n, (job, _) in enumerate(jobs):
            assert job.wait(timeout=600) == 0, (tmp_path / f"worker-{n}.log").read_text()[-3000:]
        elapsed = time.monotonic() - started
    finally:
        for job, log in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
            log.close()
    records = sorted(
        (r for i in range(processes) for r in json.loads((tmp_path / f"out-{i}.json").read_text())),
        key=lambda r: r["entered"],
    )
    assert len(records) == processes * rounds
    for before, after in itertools.pairwise(records):
        assert before["left"] <= after["entered"], f"two holders at once: {before} {after}"
        assert before["ticket"] < after["ticket"], f"served out of ticket order: {before} {after}"
    assert len({r["holder"] for r in records}) == processes * rounds  # a holder id per acquisition
    assert tickets(_client(server.url), lock_name(model)) == []
    waits = sorted(r["entered"] - r["asked"] for r in records)
    print(
        f"\nalias lock: {processes} processes x {rounds} holds of 0.05 s in {elapsed:.1f} s; wait for the "
        f"lock median {statistics.median(waits):.2f} s, max {waits[-1]:.2f} s"
    )


def test_uncontended_acquire_and_release_cost(server: MlflowServer) -> None:
    client, model = _client(server.url), _model()
    with alias_lock(client, model):
        pass  # creates the lock model
    seconds = []
    for _ in range(20):
        started = time.perf_counter()
        with alias_lock(client, model):
            pass
        seconds.append(time.perf_counter() - started)
    assert tickets(client, lock_name(model)) == []
    print(
        f"\nalias lock uncontended: acquire+release median {statistics.median(seconds) * 1000:.0f} ms, "
        f"max {max(seconds) * 1000:.0f} ms (5 requests: lock model create-if-absent, ticket create, search, and at release search, delete)"
    )


def test_a_resent_release_never_frees_the_next_holder(server: MlflowServer) -> None:
    client, model = _client(server.url), _model()
    name = lock_name(model)
    with alias_lock(client, model):
        first = tickets(client, name)[0]
    with alias_lock(client, model):
        second = tickets(client, name)
        assert [t.version for t in second] == [first.version + 1]
        # The first holder's release arrives again: by its holder id, and as the bare delete of its number.
        assert release(client, name, str(first.holder)) is False
        with pytest.raises(MlflowException) as gone:
            client.delete_model_version(name, str(first.version))
        assert gone.value.error_code == "RESOURCE_DOES_NOT_EXIST"
        assert tickets(client, name) == second  # still held
        started = time.monotonic()
        with pytest.raises(HybridopsError) as refused, alias_lock(client, model, timeout_seconds=2):
            pytest.fail("a second holder got in")
        assert 2 <= time.monotonic() - started < 30
        message = str(refused.value)
        assert f"The registry lock {name!r} of model {model!r} stayed held for 2 s" in message
        assert (
            str(second[0].holder) in message
            and "try again" in message
            and "taken over after 300 s" in message
        )
        assert tickets(client, name) == second  # the waiter that gave up took its ticket back
    assert tickets(client, name) == []


class _Resender(http.server.ThreadingHTTPServer):
    """A loopback proxy to MLflow that answers 503 after MLflow committed the first ``failures`` requests
    of ``path``: the answer is lost, MLflow's client sends the same request again."""

    def __init__(self, upstream: str, path: str, failures: int) -> None:
        self.upstream, self.path, self.failures, self.forwarded = upstream, path, failures, 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _proxy(self) -> None:
                proxy = self.server
                assert isinstance(proxy, _Resender)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                headers = {
                    k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
                }
                answer = requests.request(self.command, proxy.upstream + self.path, data=body, headers=headers,
                                          timeout=60)  # fmt: skip
                status, payload = answer.status_code, answer.content
                if self.path.split("?")[0].endswith(proxy.path):
                    proxy.forwarded += 1
                    if proxy.failures > 0:
                        proxy.failures -= 1
                        status, payload = 503, b'{"error_code": "TEMPORARILY_UNAVAILABLE"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = do_PATCH = _proxy

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def resender(
    server: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[[str, int], _Resender]]:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "0")  # resend at once
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_BACKOFF_JITTER", "0")
    started: list[_Resender] = []

    def start(path: str, failures: int) -> _Resender:
        proxy = _Resender(server.url, path, failures)
        threading.Thread(target=proxy.serve_forever, daemon=True).start()
        started.append(proxy)
        return proxy

    yield start
    for proxy in started:
        proxy.shutdown()
        proxy.server_close()


def test_a_resent_create_leaves_two_tickets_of_one_holder_and_no_deadlock(
    server: MlflowServer, resender: Callable[[str, int], _Resender]
) -> None:
    model = _model()
    direct = _client(server.url)
    with alias_lock(direct, model):
        pass  # the lock model exists: the only create below is the ticket's
    proxy = resender("/model-versions/create", 1)
    name = lock_name(model)
    started = time.monotonic()
    with alias_lock(_client(proxy.url), model, timeout_seconds=30):
        held = tickets(direct, name)
        assert proxy.forwarded == 2  # the create was sent again
        assert len(held) == 2 and held[0].holder == held[1].holder  # two tickets, one holder: it holds
    assert time.monotonic() - started < 20
    assert tickets(direct, name) == []  # both released
    with alias_lock(direct, model, timeout_seconds=10):
        pass


def test_a_resent_delete_of_a_released_ticket_hits_nobody(
    server: MlflowServer, resender: Callable[[str, int], _Resender]
) -> None:
    model = _model()
    direct = _client(server.url)
    name = lock_name(model)
    proxy = resender("/model-versions/delete", 1)
    with alias_lock(_client(proxy.url), model):
        mine = tickets(direct, name)
    # The release's delete committed, its answer was lost and it was sent again: MLflow answered "does not
    # exist" to the second one, which the release takes as done.
    assert proxy.forwarded == 2
    assert tickets(direct, name) == []
    with alias_lock(direct, model):
        after = tickets(direct, name)
        assert after[0].version == mine[0].version + 1
        proxy.failures = 1
        assert release(_client(proxy.url), name, str(mine[0].holder)) is False  # a late release again
        assert tickets(direct, name) == after


def test_a_dead_holder_is_taken_over_once_by_two_racing_waiters(server: MlflowServer) -> None:
    client, model = _client(server.url), _model()
    name = lock_name(model)
    with alias_lock(client, model):
        pass
    dead = int(client.create_model_version(name, TICKET_SOURCE, tags={HOLDER_TAG: "dead:1:0"}).version)
    inside: list[tuple[str, float, float]] = []
    barrier = threading.Barrier(2)
    errors: list[BaseException] = []

    def waiter(who: str) -> None:
        try:
            mine = _client(server.url)
            barrier.wait()
            with alias_lock(mine, model, timeout_seconds=60, stale_seconds=2):
                entered = time.time()
                time.sleep(0.5)
                inside.append((who, entered, time.time()))
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=waiter, args=(who,)) for who in ("a", "b")]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not errors, errors
    assert len(inside) == 2
    first, second = sorted(inside, key=lambda r: r[1])
    assert first[2] <= second[1], f"both held at once: {inside}"
    assert 2 <= elapsed < 60
    assert tickets(client, name) == []
    with pytest.raises(MlflowException):
        client.get_model_version(name, str(dead))


def test_a_lock_model_of_the_previous_design_does_not_stand_in_the_way(server: MlflowServer) -> None:
    client, model = _client(server.url), _model()
    name = lock_name(model)
    # What a holder of the previous release left when it died: the lock model itself, tagged, no version.
    client.create_registered_model(
        name, tags={HOLDER_TAG: "old:1:abcd"}, description="Lock of ... (hybridops)"
    )
    started = time.monotonic()
    with alias_lock(client, model, timeout_seconds=10):
        assert len(tickets(client, name)) == 1
    assert time.monotonic() - started < 10
    assert tickets(client, name) == []
    assert client.get_registered_model(name).name == name
