"""A small HTTP server showing annotated frames live in a browser (MJPEG), for headless and remote machines.

Endpoints: `/` an HTML page; `/stream.mjpg` the frames as multipart/x-mixed-replace JPEGs; `/frame.jpg` the
latest frame; `/stats` JSON {"frame", "fps", "people", "finished", "text"}.

Only requests whose Host header names the bound address or a localhost name are answered (403 otherwise), so a web
page of another site cannot read the view through DNS rebinding. Idle connections are closed after a timeout, and
clients that go away are not reported as errors.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import TCPServer
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from lightpose.errors import UsageError

logger = logging.getLogger(__name__)

BOUNDARY = "lightposeframe"
DEFAULT_HOST = "127.0.0.1"
_RESEND_INTERVAL_S = 1.0
_HOST_NAME = re.compile(r"[A-Za-z0-9._-]+")
_PORT = re.compile(r"[0-9]{1,5}")
_ADDRESS_FORMS = "PORT, HOST:PORT or [IPV6]:PORT (e.g. 8080, 0.0.0.0:8080, [::1]:8080)"

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lightpose live</title>
<style>
body { margin: 0; background: #202124; color: #e8eaed; font: 15px system-ui, sans-serif; text-align: center; }
#stats { padding: 8px; }
#view { max-width: 100vw; max-height: calc(100vh - 40px); }
</style></head>
<body>
<div id="stats">waiting for frames...</div>
<img id="view" alt="annotated stream">
<script>
const stats = document.getElementById("stats");
async function poll() {
  try {
    stats.textContent = (await (await fetch("stats", {cache: "no-store"})).json()).text;
  } catch (e) { stats.textContent = "server stopped"; }
}
window.addEventListener("load", () => {
  document.getElementById("view").src = "stream.mjpg";
  poll();
  setInterval(poll, 500);
});
</script>
</body></html>
"""


def parse_address(spec: str) -> tuple[str, int]:
    """`PORT`, `HOST:PORT` or `[IPV6]:PORT` -> (host, port), the host without brackets; a bare port (or an empty
    host) means 127.0.0.1, this machine only. Raises UsageError (a ValueError) naming the spec otherwise."""
    text = spec.strip()
    if text.startswith("["):
        host, bracket, port_text = text[1:].partition("]:")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            bracket = ""
        if not bracket:
            raise UsageError(f"bad serve address {spec!r}: brackets hold an IPv6 address, as in [::1]:8080")
    elif text.count(":") > 1:
        raise UsageError(f"bad serve address {spec!r}: put an IPv6 address in brackets, as in [::1]:8080")
    else:
        host, _, port_text = text.rpartition(":")
        host = host or DEFAULT_HOST
        if not _HOST_NAME.fullmatch(host):
            raise UsageError(f"bad serve address {spec!r}: expected {_ADDRESS_FORMS}")
    if not _PORT.fullmatch(port_text) or int(port_text) > 65535:
        raise UsageError(
            f"bad serve address {spec!r}: the port must be 0..65535 (0 picks a free one); {_ADDRESS_FORMS}"
        )
    return host, int(port_text)


def status_text(stats: dict[str, Any]) -> str:
    """The page's status line for a /stats dict: frames are numbered from 1 (`frame` is the 0-based index)."""
    if stats["frame"] is None:
        return "waiting for frames..."
    people = f"{stats['people']} {'person' if stats['people'] == 1 else 'people'}"
    finished = " (input finished)" if stats["finished"] else ""
    return f"{stats['fps']:.1f} fps \u00b7 {people} \u00b7 frame {stats['frame'] + 1}{finished}"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], family: int) -> None:
        self.address_family = family
        super().__init__(address, handler)

    def server_bind(self) -> None:
        TCPServer.server_bind(self)  # not HTTPServer's, whose getfqdn can wait on DNS
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # the client went away or stalled: normal for a live view
        logger.exception("live view: error answering %s", client_address)


class LiveServer:
    """Serves the latest published frame to any number of browsers, in a background thread.

    `LiveServer(host, port)` binds at once (OSError when the port is taken; port 0 picks a free one; a host with
    a colon is IPv6), `start()` serves, `publish(image, ...)` shows a new frame, `close()` stops. A bind to any
    non-loopback address logs a warning: the view has no authentication. Connections idle for `idle_timeout`
    seconds are closed. Usable as a context manager.
    """

    def __init__(
        self, host: str = DEFAULT_HOST, port: int = 0, *, jpeg_quality: int = 80, idle_timeout: float = 30.0
    ) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}: pick another port (0 picks a free one)")
        if not idle_timeout > 0:
            raise ValueError(f"idle_timeout must be > 0 seconds, got {idle_timeout}")
        self.jpeg_quality = jpeg_quality
        self.idle_timeout = idle_timeout
        self._condition = threading.Condition()
        self._jpeg: bytes | None = None
        self._stats: dict[str, Any] = {"frame": None, "fps": 0.0, "people": 0, "finished": False}
        self._sequence = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._httpd = _HTTPServer((host, port), self._handler_class(), family)
        bound = ipaddress.ip_address(str(self._httpd.server_address[0]).split("%")[0])
        self._bound_ip = bound
        self._names = {host.lower().rstrip(".")}
        if bound.is_unspecified:
            self._names |= {socket.gethostname().lower(), socket.gethostname().lower().split(".")[0]}
        if not bound.is_loopback:
            logger.warning(
                "the live view on %s is visible to the whole network, without authentication: anyone who can "
                "reach this machine can watch it; serve on 127.0.0.1 to keep it to this machine",
                self.url,
            )

    @property
    def url(self) -> str:
        """http://host:port/ of the page (the bound port, also when port 0 was asked for)."""
        host, port = str(self._httpd.server_address[0]), self._httpd.server_address[1]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> LiveServer:
        """Start serving in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, name="lightpose-serve", daemon=True
            )
            self._thread.start()
        return self

    def publish(self, image: np.ndarray, *, frame: int, fps: float, people: int) -> None:
        """Show a BGR uint8 (H, W, 3) image as the current frame, with its 0-based frame index, fps and person
        count (the page numbers frames from 1)."""
        ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
        if not ok:
            raise ValueError(f"could not JPEG-encode an image of shape {image.shape} and dtype {image.dtype}")
        with self._condition:
            self._jpeg = encoded.tobytes()
            self._stats = {"frame": frame, "fps": round(float(fps), 2), "people": int(people), "finished": False}
            self._sequence += 1
            self._condition.notify_all()

    def finish(self) -> None:
        """Mark the input as finished; the last frame stays on show."""
        with self._condition:
            self._stats = {**self._stats, "finished": True}
            self._condition.notify_all()

    def close(self) -> None:
        """Stop serving and release the port."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def host_allowed(self, header: str | None) -> bool:
        """Whether a request's Host header names this server: a localhost name, a loopback or the bound address,
        a name the server was bound by, or, when bound to all interfaces, any IP address or this machine's name.
        Other names are what a DNS-rebinding page would send."""
        try:
            name = urlsplit(f"//{header}").hostname if header else None
        except ValueError:
            return False
        if not name:
            return False
        name = name.rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            return True
        try:
            address = ipaddress.ip_address(name)
        except ValueError:
            return name in self._names
        return address.is_loopback or address == self._bound_ip or self._bound_ip.is_unspecified

    def _stats_body(self) -> bytes:
        with self._condition:
            stats = dict(self._stats)
        return json.dumps({**stats, "text": status_text(stats)}).encode()

    def _next_jpeg(self, after: int) -> tuple[int, bytes | None]:
        """The frame after sequence number `after`, or after a short wait the current one again (None: closed)."""
        with self._condition:
            self._condition.wait_for(lambda: self._closed or self._sequence > after, timeout=_RESEND_INTERVAL_S)
            return self._sequence, None if self._closed else self._jpeg

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = server.idle_timeout  # on every read and write of the connection

            def do_GET(self) -> None:
                if not server.host_allowed(self.headers.get("Host")):
                    self.send_error(
                        HTTPStatus.FORBIDDEN,
                        "Host not allowed",
                        f"this live view answers only to its own address: open {server.url}",
                    )
                    return
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(PAGE.encode(), "text/html; charset=utf-8")
                elif path == "/stats":
                    self._send(server._stats_body(), "application/json")
                elif path == "/frame.jpg":
                    with server._condition:
                        jpeg = server._jpeg
                    if jpeg is None:
                        self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "No frame yet", "try again in a moment")
                    else:
                        self._send(jpeg, "image/jpeg")
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self.send_error(HTTPStatus.NOT_FOUND, "Not found", "try / or /stream.mjpg")

            def _send(self, body: bytes, content_type: str) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def _stream(self) -> None:
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(f"--{BOUNDARY}\r\n".encode())
                sequence = -1
                while True:  # a client that goes away ends this with a ConnectionError, answered quietly
                    sequence, jpeg = server._next_jpeg(sequence)
                    if server._closed:
                        return
                    if jpeg is None:
                        continue
                    head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                    # The closing boundary right after the image lets browsers show it without waiting.
                    self.wfile.write(head + jpeg + f"\r\n--{BOUNDARY}\r\n".encode())
                    self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
                """Quiet: no access log on stderr."""

        return Handler
