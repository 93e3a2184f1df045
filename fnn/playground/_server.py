"""The playground's HTTP server: static page plus a small JSON API on 127.0.0.1 (private).

The page polls: it asks for one update (``POST /api/step``), draws it, and asks again on
the next animation frame while playing. Training therefore runs only while a page asks
for it, inside that request, one update at a time per page: a closed tab simply stops
asking, and its run is dropped after :data:`IDLE_S` seconds or when a newer page needs
the slot (at most :data:`MAX_RUNS`).
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import numpy as np

from fnn.playground import _code, _config, _engine

__all__ = ["make_server", "Runs", "MAX_BODY", "MAX_RUNS", "IDLE_S"]

MAX_BODY = 64 * 1024     # bytes of a request body
MAX_RUNS = 16            # pages served at once
IDLE_S = 120.0           # a run nobody asked about for this long is dropped
_STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
           "/app.js": ("app.js", "text/javascript; charset=utf-8"),
           "/style.css": ("style.css", "text/css; charset=utf-8")}


class _Slot:
    def __init__(self, run: _engine.Run):
        self.run, self.lock, self.seen = run, threading.Lock(), time.monotonic()


class Runs:
    """The runs of the open pages, by id; each page's updates happen one at a time."""

    def __init__(self) -> None:
        self._slots: dict[str, _Slot] = {}
        self._lock = threading.Lock()

    def create(self, config: _config.Config) -> tuple[str, _Slot]:
        slot = _Slot(_engine.start(config))
        with self._lock:
            now = time.monotonic()
            for rid in [r for r, s in self._slots.items() if now - s.seen > IDLE_S]:
                del self._slots[rid]
            while len(self._slots) >= MAX_RUNS:
                del self._slots[min(self._slots, key=lambda r: self._slots[r].seen)]
            rid = secrets.token_urlsafe(12)
            self._slots[rid] = slot
        return rid, slot

    def get(self, rid: Any) -> _Slot:
        with self._lock:
            slot = self._slots.get(rid) if isinstance(rid, str) else None
        if slot is None:
            raise LookupError("playground: id must name an open run; got an unknown or expired id "
                              "(reload the page)")
        slot.seen = time.monotonic()
        return slot

    def close(self, rid: Any) -> None:
        with self._lock:
            self._slots.pop(rid, None)

    def __len__(self) -> int:
        return len(self._slots)


def _bytes(values: np.ndarray, low: float, high: float) -> str:
    """Values in [low, high] as base64 of uint8 (0..255): a 64x64 map is 5.5 kB of JSON."""
    q = np.clip(np.rint((np.asarray(values, np.float64) - low) / (high - low) * 255), 0, 255)
    return base64.b64encode(q.astype(np.uint8).tobytes()).decode("ascii")


def _finite(values: list) -> list:
    """JSON has no NaN: a diverged loss is sent as null."""
    return [v if np.isfinite(v) else None for v in values]


def _points(x: Any, y: Any) -> dict:
    return {"x": np.round(np.asarray(x), 4).tolist(), "y": np.asarray(y).tolist()}


def update_json(run: _engine.Run, views: dict, since: int, with_data: bool) -> dict:
    """What the page draws after an update; losses from epoch ``since`` on."""
    weights = [{"w": np.round(np.atleast_2d(np.asarray(p["w"]).T).T, 4).tolist(),
                "b": np.round(np.atleast_1d(np.asarray(p["b"])), 4).tolist()}
               for p in (run.params if isinstance(run.params, list) else [run.params])]
    out = {"epoch": run.epoch, "converged": run.converged,
           "train_loss": _finite(run.train_loss[since:]), "test_loss": _finite(run.test_loss[since:]),
           "output": _bytes(views["output"], 0.0, 1.0), "grid": _engine.GRID,
           "neurons": [_bytes(m, -1.0, 1.0) for m in views["neurons"]],
           "neuron_grid": _engine.NEURON_GRID, "grad_norms": _finite(np.asarray(views["grad_norms"]).tolist()),
           "weights": weights, "domain": _engine.DOMAIN}
    if with_data:
        d = run.data
        out["train"], out["test"] = _points(d.x_train, d.y_train), _points(d.x_test, d.y_test)
    return out


class _Handler(BaseHTTPRequestHandler):
    server: _Server                # for mypy only: the server this handler was made by
    server_version = "fnn-playground"
    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body leave in two writes: without this, Nagle's algorithm and the
        # client's delayed ACK hold the body ~40 ms (measured: 48 ms against 2.5 ms).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format, *args):      # quiet: the terminal shows the URL only
        pass

    # ---------------------------------------------------------------- plumbing
    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", "default-src 'self'; img-src 'self' data:")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj, allow_nan=False).encode(), "application/json")

    def _error(self, status: int, text: str) -> None:
        self.close_connection = True
        self._json(status, {"error": text})

    def _trusted(self) -> bool:
        """Host (and Origin, when sent) must be this server: refuses DNS rebinding and
        cross-site requests."""
        port = self.server.server_address[1]
        hosts = {f"127.0.0.1:{port}", f"localhost:{port}"}
        origin = self.headers.get("Origin")
        if self.headers.get("Host") not in hosts or (origin is not None and
                                                     origin not in {f"http://{h}" for h in hosts}):
            self._error(HTTPStatus.FORBIDDEN, "playground: Host and Origin must be this server "
                        f"(http://127.0.0.1:{port}); got Host {self.headers.get('Host')!r}, "
                        f"Origin {origin!r}")
            return False
        return True

    def _body(self) -> Any:
        if self.headers.get("Content-Type", "").split(";")[0].strip() != "application/json":
            raise ValueError("playground: Content-Type must be application/json; got "
                             f"{self.headers.get('Content-Type')!r}")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            raise ValueError("playground: Content-Length must be given") from None
        if not 0 <= length <= MAX_BODY:
            raise ValueError(f"playground: body must be at most {MAX_BODY} bytes; got {length}")
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ValueError(f"playground: body must be JSON; got an error at {e}") from None

    # ---------------------------------------------------------------- routes
    def do_GET(self):
        if not self._trusted():
            return
        path = self.path.split("?")[0]
        if path == "/api/options":
            self._json(HTTPStatus.OK, {"defaults": _config.Config()._asdict(), "choices": _config.CHOICES,
                                       "limits": _config.LIMITS})
        elif path in _STATIC:
            name, kind = _STATIC[path]
            self._send(HTTPStatus.OK, resources.files("fnn.playground").joinpath("static", name).read_bytes(),
                       kind)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"playground: path must be one of the page's; got {path!r}")

    def do_POST(self):
        if not self._trusted():
            return
        routes = {"/api/run": self._new_run, "/api/step": self._step, "/api/code": self._code,
                  "/api/close": self._close}
        route = routes.get(self.path)
        if route is None:
            self._error(HTTPStatus.NOT_FOUND, f"playground: path must be one of {', '.join(routes)}; "
                        f"got {self.path!r}")
            return
        try:
            body = self._body()
            if not isinstance(body, dict):
                raise ValueError(f"playground: body must be a JSON object; got {type(body).__name__}")
            self._json(HTTPStatus.OK, route(body))
        except LookupError as e:
            self._error(HTTPStatus.NOT_FOUND, str(e.args[0]))
        except ValueError as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:  # the server outlives any one request  # noqa: BLE001
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"playground: {type(e).__name__}: {e}")

    def _new_run(self, body: dict) -> dict:
        """A new run (a page's first, or after a reset or a config change)."""
        config = _config.parse(body.get("config", {}))
        if "id" in body:
            self.server.runs.close(body["id"])
        rid, slot = self.server.runs.create(config)
        with slot.lock:
            slot.run, views = _engine.advance(slot.run, train=False)
            return {"id": rid, "config": config._asdict(), **update_json(slot.run, views, 0, True)}

    def _step(self, body: dict) -> dict:
        slot = self.server.runs.get(body.get("id"))
        with slot.lock:
            since = slot.run.epoch
            slot.run, views = _engine.advance(slot.run)
            return update_json(slot.run, views, since, False)

    def _code(self, body: dict) -> dict:
        slot = self.server.runs.get(body.get("id"))
        run = slot.run
        loss = _finite(run.test_loss[-1:])[0] if run.test_loss else None
        return {"code": _code.script(run.config, run.epoch), "epoch": run.epoch, "test_loss": loss}

    def _close(self, body: dict) -> dict:
        self.server.runs.close(body.get("id"))
        return {"closed": True}


class _Server(ThreadingHTTPServer):
    runs: Runs                     # set by make_server
    daemon_threads = True          # Ctrl-C does not wait for a page's open connection
    allow_reuse_address = True


def make_server(port: int = 0) -> ThreadingHTTPServer:
    """A playground server bound to 127.0.0.1:``port`` (0: a free port), not yet serving."""
    server = _Server(("127.0.0.1", port), _Handler)
    server.runs = Runs()
    return server
