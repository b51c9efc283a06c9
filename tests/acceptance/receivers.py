"""Real HTTP webhook receivers in threads: one that answers at once, one that trickles its answer."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    url: str
    #: (monotonic time, X-Cracker-Delivery header, body) of each request.
    requests: list[tuple[float, str, bytes]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while len(self.requests) < count and time.monotonic() < deadline:
            time.sleep(0.02)
        return len(self.requests) >= count


@contextmanager
def receiver(trickle_s: float = 0.0) -> Iterator[Received]:
    """A receiver on 127.0.0.1. With ``trickle_s``, it answers 200 at once and then sends its body
    one byte a second for that long (the receiver that used to hold every account's deliveries)."""
    state: Received

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            state.requests.append((time.monotonic(), self.headers.get("x-cracker-delivery", ""), body))
            if not trickle_s:
                self.send_response(204)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Length", str(10**6))
            self.end_headers()
            ends = time.monotonic() + trickle_s
            try:
                while time.monotonic() < ends and not state.stop.wait(1.0):
                    self.wfile.write(b"x")
                    self.wfile.flush()
            except OSError:
                pass  # the dispatcher hung up: what it should do
            self.close_connection = True

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    state = Received(url=f"http://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
