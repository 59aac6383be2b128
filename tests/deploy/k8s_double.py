"""A small HTTP double of the Kubernetes API (standard library only) for the deploy tests.

It keeps objects in memory and serves what :mod:`hybridops.deploy.cluster` calls: ``/version``, namespaces,
server-side apply (PATCH ``application/apply-patch+yaml``, create or replace; field manager ``helm``),
create (POST, 409 when the object exists), replace (PUT), merge patches, GET of objects and label-selected
lists, DELETE, plus workload status (ready or not, per ``ready``; a Job completes or fails at once), pods
and events the test sets. Every request that writes is logged in ``requests``, every read (path and query)
in ``reads``. With a ``runner`` (:class:`k8s_jobs.JobRunner`) each Job created through the API runs instead
as a local process, with its pod and status read from that process (dagster-k8s' run launcher and run
monitoring).

For Feast's Kubernetes auth it also plays the API server's authentication and RBAC (:mod:`k8s_auth`): it
issues ServiceAccount tokens (:meth:`K8sDouble.service_account_token`, JWTs signed with its own key,
optionally expiring), answers TokenReviews (authenticated only for a token it issued that has not expired)
and authorizes every request of such a token with RBAC over the Roles, RoleBindings and ClusterRoleBindings
it holds (:meth:`K8sDouble.load` the rendered chart's), plus the built-in ClusterRole
``system:auth-delegator``; a request RBAC does not allow gets 403, as from a real API server. ``TOKEN``
stays the administrator that may do everything.
``running(tls=...)`` serves HTTPS (the Kubernetes client's in-cluster configuration only speaks HTTPS).
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from cryptography.hazmat.primitives.asymmetric import rsa
from k8s_auth import ApiAuth, request_attributes

from hybridops.deploy.kube import CLUSTER_SCOPED_KINDS, _path

if TYPE_CHECKING:
    from k8s_jobs import JobRunner

TOKEN = "test-token"


@dataclass
class K8sDouble(ApiAuth):
    objects: dict[str, dict[str, Any]] = field(default_factory=dict)  # collection path + "/" + name
    requests: list[tuple[str, str, dict[str, Any] | None]] = field(default_factory=list)
    reads: list[str] = field(default_factory=list)  # GETs: path, and "?" query when there is one
    ready: bool = True  # workloads report readyReplicas == replicas
    not_ready: set[str] = field(default_factory=set)  # names that never become ready
    pods: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    port: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Bearer tokens this API server issued -> the username they authenticate as.
    identities: dict[str, str] = field(default_factory=dict)
    signing_key: rsa.RSAPrivateKey = field(
        default_factory=lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    scheme: str = "http"
    # Token -> the TokenReview status to answer for it, whatever the token is (odd answers for parser tests).
    canned_reviews: dict[str, dict[str, Any]] = field(default_factory=dict)
    runner: JobRunner | None = None  # runs the Jobs created through the API as local processes

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def load(self, objs: tuple[dict[str, Any], ...], namespace: str) -> None:
        """Hold these objects (a rendered chart) as if they had been applied to ``namespace``."""
        for obj in objs:
            meta = obj["metadata"]
            ns = None if obj["kind"] in CLUSTER_SCOPED_KINDS else meta.get("namespace") or namespace
            self.objects[_path(obj["apiVersion"], obj["kind"], ns, meta["name"])] = copy.deepcopy(obj)

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

    def _status(self, obj: dict[str, Any], path: str = "") -> dict[str, Any]:
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
        elif (
            obj.get("kind") == "Job" and self.runner and (status := self.runner.job_status(path)) is not None
        ):
            obj["status"] = status
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
        if method == "POST" and path == "/apis/authentication.k8s.io/v1/tokenreviews":
            review = self.token_review(body)
            self.requests.append(("TOKENREVIEW", path, review))
            return 201, review
        if method == "POST":
            key = f"{path}/{body['metadata']['name']}"
            if key in self.objects:
                return 409, {"kind": "Status", "message": "already exists", "code": 409}
            if self.runner is not None and body.get("kind") == "Job":
                refused = self.runner.start(key, body, self.objects)
                if refused:
                    return 422, {"kind": "Status", "message": refused, "reason": "Invalid", "code": 422}
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
            pods = self.pods + (self.runner.pod_objects() if self.runner else [])
            return 200, {"kind": "PodList", "items": _select(pods, query)}
        if path.endswith("/events") and method == "GET":
            return 200, {"kind": "EventList", "items": _select(self.events, query)}
        if path.endswith("/status") and method == "GET":  # an object's status subresource
            path, parts = path.removesuffix("/status"), parts[:-1]
        is_object = (parts[0] == "api" and len(parts) in (4, 6)) or (
            parts[0] == "apis" and len(parts) in (5, 7)
        )
        if method == "GET" and not is_object:
            prefix = path + "/"
            items = [
                self._status(o, k)
                for k, o in self.objects.items()
                if k.startswith(prefix) and "/" not in k[len(prefix) :]
            ]
            return 200, {"kind": "List", "items": _select(items, query)}
        if method == "GET":
            found = self.objects.get(path)
            if found is None:
                return 404, {"kind": "Status", "message": f"{path} not found", "code": 404}
            return 200, self._status(found, path)
        if method == "DELETE":
            self.requests.append(("DELETE", path, None))
            if self.runner is not None and self.runner.delete_pod(path):
                return 200, {"kind": "Status", "status": "Success"}
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
    """The items matching the label selector and the field selector (``a.b=value`` terms) of ``query``."""
    selector = (query.get("labelSelector") or [""])[0]
    wanted = dict(term.split("=", 1) for term in selector.split(",") if term)
    fields = dict(term.split("=", 1) for term in (query.get("fieldSelector") or [""])[0].split(",") if term)
    return [
        i
        for i in items
        if all((i["metadata"].get("labels") or {}).get(k) == v for k, v in wanted.items())
        and all(_field(i, k) == v for k, v in fields.items())
    ]


def _field(obj: dict[str, Any], dotted: str) -> Any:
    for key in dotted.split("."):
        obj = obj.get(key) if isinstance(obj, dict) else None  # type: ignore[assignment]
    return obj


def _handler(double: K8sDouble) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlsplit(self.path)
            scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
            token = token if scheme.lower() == "bearer" else ""
            if self.path != "/version" and token != TOKEN:
                username, _ = double.authenticate(token)
                if username is None:
                    self._send(401, {"kind": "Status", "message": "Unauthorized", "code": 401})
                    return
                verb, group, resource, namespace = request_attributes(self.command, url.path)
                with double.lock:
                    allowed = double.allowed(username, verb, group, resource, namespace)
                    if not allowed:
                        double.requests.append(("FORBIDDEN", url.path, {"user": username, "verb": verb}))
                if not allowed:
                    message = (
                        f'{resource} is forbidden: User "{username}" cannot {verb} resource "{resource}"'
                    )
                    self._send(
                        403, {"kind": "Status", "message": message, "reason": "Forbidden", "code": 403}
                    )
                    return
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            with double.lock:
                if self.command == "GET":
                    double.reads.append(url.path + (f"?{url.query}" if url.query else ""))
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
def running(tls: tuple[Path, Path] | None = None) -> Iterator[K8sDouble]:
    """The double on a loopback port; ``tls`` (certificate, key files): over HTTPS."""
    double = K8sDouble()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(double))
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        double.scheme = "https"
    double.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield double
    finally:
        server.shutdown()
        server.server_close()
