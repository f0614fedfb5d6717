"""REST front-end: TF Serving's ``/v1/models/...`` API on the standard library's HTTP server."""

from __future__ import annotations

import logging
import re
import socket
import threading
import time
import zlib
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

from export.serving import apis, codec
from export.serving.errors import ServingError, invalid
from export.serving.metrics import track
from export.serving.repository import ModelRepository

log = logging.getLogger("export.serve")

# TF Serving's own patterns (model_servers/http_rest_api_util.cc).
_VERSION_OR_LABEL = r"(?:/versions/(\d+)|/labels/([^/:]+))?"
PREDICT_PATH = re.compile(r"/v1/models/([^/:]+)" + _VERSION_OR_LABEL
                          + r":(classify|regress|predict)", re.IGNORECASE | re.ASCII)
STATUS_PATH = re.compile(r"/v1/models(?:/([^/:]+))?" + _VERSION_OR_LABEL + r"(?:/(metadata))?",
                         re.IGNORECASE | re.ASCII)
API_PREFIX = re.compile(r"/v1/", re.IGNORECASE)


def _model_args(match) -> tuple[str, int | None, str | None]:
    """(name, version, label) from a path match, URL-decoded."""
    name, version, label = match.group(1), match.group(2), match.group(3)
    if version is not None:
        number = int(version)
        if number >= 2**63:
            raise invalid(f"Failed to convert version: {version} to numeric.")
        version = number
    return unquote(name or ""), version, unquote(label) if label else None


class RestApi:
    """Request (method, path, body) -> (HTTP status, JSON bytes); never raises."""

    def __init__(self, repository: ModelRepository, timeout_ms: int = 30000, web=None,
                 metrics=None, metrics_path=None):
        self.repository = repository
        self.metrics = metrics            # export.serving.metrics.Metrics or None
        self.metrics_path = metrics_path  # where Prometheus scrapes them
        self.web = web  # optional: GET path -> (status, content type, body) or None
        self.timeout_ms = timeout_ms  # --rest_api_timeout_in_ms; <= 0: no timeout

    def handle(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        try:
            return 200, self._dispatch(method, urlsplit(path).path, body)
        except ServingError as error:
            return error.http_status, codec.dumps({"error": error.message})
        except Exception as error:  # a bug or an odd model: answer, keep serving
            log.exception("REST %s %s failed", method, path)
            return 500, codec.dumps({"error": f"Internal error: {type(error).__name__}: {error}"})

    def _dispatch(self, method: str, path: str, body: bytes) -> bytes:
        if method == "POST" and (match := PREDICT_PATH.fullmatch(path)):
            if match.group(4).lower() != "predict":
                raise ServingError("UNIMPLEMENTED",
                                   f"{match.group(4)} is not supported by this server")
            return self.predict(*_model_args(match), body)
        if method == "GET" and (match := STATUS_PATH.fullmatch(path)):
            name, version, label = _model_args(match)
            if not name:
                raise invalid("Missing model name in request.")
            if match.group(4):
                servable = self.repository.get(name, version, label)
                return codec.dumps(apis.model_metadata_json(servable))
            status = apis.model_status(self.repository, name, version, label)
            return codec.dumps(apis.model_status_json(status))
        raise invalid(f"Malformed request: {method} {path}")

    def predict(self, name: str, version: int | None, label: str | None, body: bytes) -> bytes:
        """A predict request in row or columnar format -> predictions / outputs."""
        with track(self.metrics, name, "predict", "REST") as request:
            document = codec.parse_json_object(body)
            signature_name = codec.signature_name(document)
            request.signature = signature_name or "serving_default"
            servable = self.repository.get(name, version, label)
            request.version = servable.version
            signature = servable.signature(signature_name)
            arrays, request_format = codec.decode_predict_inputs(document, signature.input_dtypes)
            deadline = (time.monotonic() + self.timeout_ms / 1000) if self.timeout_ms > 0 else None
            return codec.encode_predict_response(signature(arrays, deadline=deadline),
                                                 request_format)


class _HttpError(Exception):
    """A transport-level refusal (size limit, bad headers) answered before reading the body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


class _Handler(BaseHTTPRequestHandler):
    """HTTP/1.1 keep-alive handler: reads a bounded body and answers JSON."""

    protocol_version = "HTTP/1.1"
    server_version = "GANZooModelServer"
    disable_nagle_algorithm = True
    timeout = 120  # idle keep-alive connections are closed after this many seconds

    def _serve(self):
        path = urlsplit(self.path).path
        try:
            body = self._read_body()
        except _HttpError as error:
            self._send_json(error.status, codec.dumps({"error": error.message}), close=True)
            self._discard_body()
            return
        page = (self.server.api.web.handle(path) if self.command in ("GET", "HEAD")
                and self.server.api.web is not None and not API_PREFIX.match(path) else None)
        api = self.server.api
        if api.metrics is not None and self.command == "GET" and path == api.metrics_path:
            self._send_json(200, api.metrics.render().encode(),
                            content_type="text/plain; version=0.0.4")
        elif page is not None:
            self._send_json(page[0], page[2], content_type=page[1])
        elif not API_PREFIX.match(path):
            self._send_json(404, codec.dumps({"error": f"Not found: {self.command} {path}"}))
        elif self.command not in ("GET", "POST"):
            self._send_json(405, codec.dumps({"error": f"Method {self.command} not allowed "
                                                       "(use GET or POST)"}))
        else:
            self._send_json(*self.server.api.handle(self.command, self.path, body))

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _serve

    def _content_length(self) -> int:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _HttpError(411, "Chunked request bodies are not supported; send Content-Length")
        text = self.headers.get("Content-Length", "0").strip()
        if not re.fullmatch(r"[0-9]+", text):
            raise _HttpError(400, f"Invalid Content-Length: {text!r}")
        limit = self.server.max_request_bytes
        if int(text) > limit:
            raise _HttpError(413, f"Request body of {int(text)} bytes exceeds the limit of "
                                  f"{limit} bytes (--max_request_bytes)")
        return int(text)

    def _read_body(self) -> bytes:
        body = self.rfile.read(self._content_length())
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        if encoding in ("", "identity"):
            return body
        if encoding not in ("gzip", "x-gzip", "deflate"):
            raise _HttpError(415, f"Unsupported Content-Encoding: {encoding} (use gzip)")
        return self._inflate(body, encoding)

    def _inflate(self, body: bytes, encoding: str) -> bytes:
        """A gzip (or zlib) body, decompressed up to the request size limit."""
        limit = self.server.max_request_bytes
        inflater = zlib.decompressobj(zlib.MAX_WBITS | (16 if "gzip" in encoding else 0))
        try:
            data = inflater.decompress(body, limit + 1)
        except zlib.error as error:
            raise _HttpError(400, f"Failed to decompress {encoding} request body: {error}") from None
        if len(data) > limit:
            raise _HttpError(413, f"Decompressed request body exceeds the limit of {limit} bytes "
                                  "(--max_request_bytes)")
        return data

    def _discard_body(self, seconds: float = 5.0) -> None:
        """Lingering close: drop what the client is still sending so it can read our answer."""
        deadline = time.monotonic() + seconds
        try:
            self.wfile.flush()
            self.connection.settimeout(1.0)
            while time.monotonic() < deadline and self.connection.recv(1 << 16):
                pass
        except OSError:
            pass

    def handle_expect_100(self):
        """Refuse an oversized body before the client sends it."""
        try:
            self._content_length()
        except _HttpError as error:
            self._send_json(error.status, codec.dumps({"error": error.message}), close=True)
            return False
        return super().handle_expect_100()

    def _send_json(self, status: int, payload: bytes, close: bool = False,
                   content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        if status == 405:
            self.send_header("Allow", "GET, POST")
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    def send_error(self, code, message=None, explain=None):
        """The base class's own errors (bad request line, huge headers...) as JSON too."""
        message = message or HTTPStatus(code).phrase
        self._send_json(code, codec.dumps({"error": message}), close=True)

    def log_message(self, format, *args):
        log.debug("%s - %s", self.address_string(), format % args)


class RestServer(ThreadingHTTPServer):
    """Threaded HTTP server bound to (host, port); port 0 picks a free port."""

    daemon_threads = True
    request_queue_size = 128

    def __init__(self, api: RestApi, host: str, port: int, max_request_bytes: int):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.api = api
        self.max_request_bytes = max_request_bytes
        super().__init__((host, port), _Handler)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server_address[1]

    def start(self) -> None:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="rest-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def handle_error(self, request, client_address):
        log.debug("REST connection from %s failed", client_address, exc_info=True)
