"""A small HTTP server showing annotated frames live in a browser (MJPEG), for headless and remote machines.

Endpoints: `/` an HTML page; `/stream.mjpg` the frames as multipart/x-mixed-replace JPEGs; `/frame.jpg` the
latest frame; `/stats` JSON {"frame", "fps", "people", "finished"}.
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

BOUNDARY = "lightposeframe"
_RESEND_INTERVAL_S = 1.0

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
    const s = await (await fetch("stats", {cache: "no-store"})).json();
    if (s.frame !== null) {
      stats.textContent = s.fps.toFixed(1) + " fps \\u00b7 " + s.people + (s.people === 1 ? " person" : " people") +
        " \\u00b7 frame " + s.frame + (s.finished ? " (input finished)" : "");
    }
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


class LiveServer:
    """Serves the latest published frame to any number of browsers, in a background thread.

    `LiveServer(host, port)` binds at once (OSError when the port is taken; port 0 picks a free one), `start()`
    serves, `publish(image, ...)` shows a new frame, `close()` stops. Usable as a context manager.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, jpeg_quality: int = 80) -> None:
        if not 0 <= port <= 65535:
            raise ValueError(f"port must be in 0..65535, got {port}")
        self.jpeg_quality = jpeg_quality
        self._condition = threading.Condition()
        self._jpeg: bytes | None = None
        self._stats: dict[str, object] = {"frame": None, "fps": 0.0, "people": 0, "finished": False}
        self._sequence = 0
        self._closed = False
        self._thread: threading.Thread | None = None
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True

    @property
    def url(self) -> str:
        """http://host:port/ of the page (the bound port, also when port 0 was asked for)."""
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}/"

    def start(self) -> LiveServer:
        """Start serving in a daemon thread."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="lightpose-serve", daemon=True)
            self._thread.start()
        return self

    def publish(self, image: np.ndarray, *, frame: int, fps: float, people: int) -> None:
        """Show a BGR uint8 (H, W, 3) image as the current frame, with its frame index, fps and person count."""
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

    def _next_jpeg(self, after: int) -> tuple[int, bytes | None]:
        """The frame after sequence number `after`, or after a short wait the current one again (None: closed)."""
        with self._condition:
            self._condition.wait_for(lambda: self._closed or self._sequence > after, timeout=_RESEND_INTERVAL_S)
            return self._sequence, None if self._closed else self._jpeg

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                if path in ("/", "/index.html"):
                    self._send(PAGE.encode(), "text/html; charset=utf-8")
                elif path == "/stats":
                    with server._condition:
                        body = json.dumps(server._stats).encode()
                    self._send(body, "application/json")
                elif path == "/frame.jpg":
                    with server._condition:
                        jpeg = server._jpeg
                    if jpeg is None:
                        self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                    else:
                        self._send(jpeg, "image/jpeg")
                elif path == "/stream.mjpg":
                    self._stream()
                else:
                    self.send_error(HTTPStatus.NOT_FOUND, "not found: try / or /stream.mjpg")

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
                sequence = -1
                try:
                    self.wfile.write(f"--{BOUNDARY}\r\n".encode())
                    while True:
                        sequence, jpeg = server._next_jpeg(sequence)
                        if server._closed:
                            return
                        if jpeg is None:
                            continue
                        head = f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode()
                        # The closing boundary right after the image lets browsers show it without waiting.
                        self.wfile.write(head + jpeg + f"\r\n--{BOUNDARY}\r\n".encode())
                        self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base class's name)
                """Quiet: no access log on stderr."""

        return Handler
