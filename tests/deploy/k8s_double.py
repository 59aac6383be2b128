"""A small HTTP double of the Kubernetes API (standard library only) for the deploy tests.

It keeps objects in memory and serves what :mod:`hybridops.deploy.cluster` calls: ``/version``, namespaces,
server-side apply (PATCH ``application/apply-patch+yaml``, create or replace; field manager ``helm``),
create (POST, 409 when the object exists), replace (PUT), merge patches, GET of objects and label-selected
lists, DELETE, plus workload status (ready or not, per ``ready``; a Job completes or fails at once), pods
and events the test sets. Every request is logged in ``requests``.
"""

from __future__ import annotations

import copy
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "test-token"


@dataclass
class K8sDouble:
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # collection path + "/" + name
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    ready: bool = True  # workloads report readyReplicas == replicas
    not_ready: set[str] = field(default_factory=set)  # names that never become ready
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def applied(self) -> list[tuple[str, dict[str, Any]]]:
        """(path, body) of every server-side apply received, in order."""
        return [(path, body) for method, path, body in self.requests if method == "APPLY" and body]

    def get(self, path: str) -> dict[str, Any] | None:
        return self.objects.get(path)

    def write_kubeconfig(self, path: Path) -> Path:
        path.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "double", "cluster": {"server": self.url}}],
                    "users": [{"name": "tester", "user": {"token": TOKEN}}],
                    "contexts": [{"name": "double", "context": {"cluster": "double", "user": "tester"}}],
                    "current-context": "double",
                }
            )
        )
        return path

    # ------------------------------------------------------------------------------------- behaviour

    def _status(self, obj: dict[str, Any]) -> dict[str, Any]:
        obj = copy.deepcopy(obj)
        if obj.get("kind") in ("Deployment", "StatefulSet"):
            replicas = obj.get("spec", {}).get("replicas", 1)
            ready = self.ready and obj["metadata"]["name"] not in self.not_ready
            obj["status"] = {
                "observedGeneration": obj["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas if ready else 0,
            }
        elif obj.get("kind") == "Job":  # the Job controller: done at once, complete or failed per `ready`
            ok = self.ready and obj["metadata"]["name"] not in self.not_ready
            condition = (
                {"type": "Complete", "status": "True"}
                if ok
                else {
                    "type": "Failed",
                    "status": "True",
                    "reason": "BackoffLimitExceeded",
                    "message": "Job has reached the specified backoff limit",
                }
            )
            obj["status"] = {"conditions": [condition], "succeeded" if ok else "failed": 1}
        return obj

    def handle(
        self, method: str, path: str, query: dict[str, list[str]], body: Any, content_type: str
    ) -> tuple[int, Any]:
        parts = path.strip("/").split("/")
        if path == "/version":
            return 200, {"major": "1", "minor": "33", "gitVersion": "v1.33.0"}
        if method == "POST":
            key = f"{path}/{body['metadata']['name']}"
            if key in self.objects:
                return 409, {"kind": "Status", "message": "already exists", "code": 409}
            self.objects[key] = body
            self.requests.append(("POST", key, body))
            return 201, body
        if method == "PUT":
            if path not in self.objects:
                return 404, {"kind": "Status", "message": "not found", "code": 404}
            self.objects[path] = body
            self.requests.append(("PUT", path, body))
            return 200, body
        if path.endswith("/pods") and method == "GET":
            return 200, {"kind": "PodList", "items": _select(self.pods, query)}
        if path.endswith("/events") and method == "GET":
            return 200, {"kind": "EventList", "items": list(self.events)}
        is_object = (parts[0] == "api" and len(parts) in (4, 6)) or (
            parts[0] == "apis" and len(parts) in (5, 7)
        )
        if method == "GET" and not is_object:
            prefix = path + "/"
            items = [
                self._status(o)
                for k, o in self.objects.items()
                if k.startswith(prefix) and "/" not in k[len(prefix) :]
            ]
            return 200, {"kind": "List", "items": _select(items, query)}
        if method == "GET":
            found = self.objects.get(path)
            if found is None:
                return 404, {"kind": "Status", "message": f"{path} not found", "code": 404}
            return 200, self._status(found)
        if method == "DELETE":
            self.requests.append(("DELETE", path, None))
            if self.objects.pop(path, None) is None:
                return 404, {"kind": "Status", "message": "not found", "code": 404}
            return 200, {"kind": "Status", "status": "Success"}
        if method == "PATCH" and content_type.startswith("application/apply-patch"):
            if query.get("fieldManager") != ["helm"]:
                return 400, {"kind": "Status", "message": "fieldManager required", "code": 400}
            self.requests.append(("APPLY", path, body))
            old = self.objects.get(path)
            obj = copy.deepcopy(body)
            generation = 1
            if old is not None:
                generation = old["metadata"]["generation"] + (old.get("spec") != obj.get("spec"))
            obj["metadata"]["generation"] = generation
            obj["metadata"]["uid"] = (old or {}).get("metadata", {}).get("uid", f"uid-{len(self.objects)}")
            self.objects[path] = obj
            return 200, obj
        if method == "PATCH":
            self.requests.append(("PATCH", path, body))
            found = self.objects.get(path)
            if found is None:
                return 404, {"kind": "Status", "message": "not found", "code": 404}
            _merge(found, body)
            return 200, found
        return 405, {"kind": "Status", "message": f"{method} {path} not supported", "code": 405}


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> None:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        elif value is None:
            base.pop(key, None)
        else:
            base[key] = value


def _select(items: list[dict[str, Any]], query: dict[str, list[str]]) -> list[dict[str, Any]]:
    selector = (query.get("labelSelector") or [""])[0]
    wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
    return [
        i for i in items if all((i["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
    ]


def _handler(double: K8sDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            if self.path != "/version" and self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self._send(401, {"kind": "Status", "message": "Unauthorized", "code": 401})
                return
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with double.lock:
                code, answer = double.handle(
                    self.command, url.path, parse_qs(url.query), body, self.headers.get("Content-Type", "")
                )
            self._send(code, answer)

        def _send(self, code: int, answer: Any) -> None:
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def running() -> Iterator[K8sDouble]:
    double = K8sDouble()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    double.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
