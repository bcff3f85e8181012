"""Real servers on loopback for the remote-source tests: an HTTP file server and an S3 server (moto).

Both record every request they receive (method, path, Range header), so tests can tell whether a
file's content was downloaded, and both can be told to fail a file's next downloads (HTTP 500, or
a connection dropped halfway through the body).
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from dataclasses import dataclass
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from moto.moto_server.threaded_moto_server import ThreadedMotoServer
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
from werkzeug.serving import make_server


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None


class Faults:
    """How many of a path's next GETs fail, and how (500 or a dropped connection), after some that succeed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: dict[str, list[str | None]] = {}

    def fail(self, path: str, times: int, how: str = "500", after: int = 0) -> None:
        with self._lock:
            self._pending[path] = [how] * times + [None] * after  # taken from the end

    def take(self, path: str) -> str | None:
        with self._lock:
            pending = self._pending.get(path)
            return pending.pop() if pending else None


class RequestLog:
    """Requests a server received, thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self.requests: list[Request] = []

    def add(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def clear(self) -> None:
        with self._lock:
            self.requests.clear()

    def gets(self, path_suffix: str = "") -> int:
        """GET requests for paths ending with `path_suffix` (listings excluded: they have a query)."""
        return sum(1 for r in self.requests if r.method == "GET" and r.path.endswith(path_suffix))

    def count(self) -> Counter:
        return Counter((r.method, r.path) for r in self.requests)


class _FileHandler(BaseHTTPRequestHandler):
    server: FileServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # noqa: A002 - quiet
        pass

    def do_HEAD(self):
        self._serve(body=False)

    def do_GET(self):
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        self.server.log.add(Request(self.command, path, self.headers.get("Range")))
        file = (self.server.root / path.lstrip("/")).resolve()
        if not file.is_relative_to(self.server.root) or not file.is_file():
            self._status_only(404)
            return
        fault = self.server.faults.take(path) if body else None
        if fault == "500":
            self._status_only(500)
            return
        stat = file.stat()
        start, end, status = self._range(stat.st_size)
        self.send_response(status)
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{stat.st_size}")
        if self.server.etags:
            tag = hashlib.sha1(f"{stat.st_size}:{stat.st_mtime_ns}:{stat.st_ino}".encode()).hexdigest()[:20]
            self.send_header("ETag", f'"{tag}"')
        if self.server.last_modified:
            self.send_header("Last-Modified", formatdate(stat.st_mtime, usegmt=True))
        self.end_headers()
        if body:
            self._send_body(file, start, end if fault != "drop" else start + (end - start) // 2)
            self.close_connection = fault == "drop"

    def _send_body(self, file: Path, start: int, end: int) -> None:
        with file.open("rb") as handle:
            handle.seek(start)
            while start < end:
                chunk = handle.read(min(1 << 20, end - start))
                if not chunk:
                    break
                self.wfile.write(chunk)
                start += len(chunk)

    def _range(self, size: int) -> tuple[int, int, int]:
        header = self.headers.get("Range")
        if not header or not header.startswith("bytes="):
            return 0, size, 200
        first, _, last = header[len("bytes=") :].partition("-")
        start = int(first) if first else max(0, size - int(last))
        end = min(size, int(last) + 1) if first and last else size
        return start, end, 206

    def _status_only(self, status: int) -> None:
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


class FileServer(ThreadingHTTPServer):
    """Serves a folder over HTTP/1.1 on 127.0.0.1 with ETag, Last-Modified and Range support."""

    daemon_threads = True

    def __init__(self, root: Path):
        super().__init__(("127.0.0.1", 0), _FileHandler)
        self.root = root.resolve()
        self.log = RequestLog()
        self.faults = Faults()
        self.etags = True
        self.last_modified = True
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.shutdown()
        self.server_close()


class _Recording:
    """WSGI middleware in front of moto: logs requests, fails a key's next GETs on demand."""

    def __init__(self, app, log: RequestLog, faults: Faults):
        self.app, self.log, self.faults = app, log, faults

    def __call__(self, environ, start_response):
        path = unquote(environ.get("PATH_INFO", ""))
        method = environ["REQUEST_METHOD"]
        query = environ.get("QUERY_STRING", "")
        self.log.add(Request(method, path + ("?" + query if query else ""), environ.get("HTTP_RANGE")))
        if method == "GET" and not query and self.faults.take(path) is not None:
            start_response("500 Internal Server Error", [("Content-Type", "application/xml")])
            return [b"<Error><Code>InternalError</Code><Message>injected</Message></Error>"]
        return self.app(environ, start_response)


class QuietHandler(MotoRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class S3Server(ThreadedMotoServer):
    """moto's S3 in server mode on 127.0.0.1, behind a request log."""

    def __init__(self):
        super().__init__(ip_address="127.0.0.1", port=0, verbose=False)
        self.log = RequestLog()
        self.faults = Faults()

    def _server_entry(self) -> None:
        app = _Recording(DomainDispatcherApplication(create_backend_app), self.log, self.faults)
        self._server = make_server(self._ip_address, self._port, app, True, request_handler=QuietHandler)
        self._server_ready_event.set()
        self._server.serve_forever()

    @property
    def url(self) -> str:
        host, port = self.get_host_and_port()
        return f"http://{host}:{port}"
