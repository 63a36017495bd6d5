"""A raw loopback TCP server for wire faults FakeLLMServer cannot script.

Not a conftest: import it. Each connection runs ``handler(sock)`` in its own thread;
the handler reads the request with :func:`read_request` and writes what it likes::

    def drip(sock):
        read_request(sock)
        sock.sendall(b"HTTP/1.1 200 OK\\r\\ncontent-length: 100\\r\\n\\r\\n")
        ...

    with RawServer(drip) as srv:
        ...  # srv.base_url is http://127.0.0.1:<port>/v1
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable
from types import TracebackType


def read_request(sock: socket.socket) -> bytes:
    """Read one HTTP request (head and a Content-Length body); return its body."""
    data = b""
    while b"\r\n\r\n" not in data:
        got = sock.recv(65536)
        if not got:
            return b""
        data += got
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        got = sock.recv(65536)
        if not got:
            break
        body += got
    return body


class RawServer:
    """Accepts connections on 127.0.0.1 and hands each socket to ``handler``."""

    def __init__(self, handler: Callable[[socket.socket], None]) -> None:
        self.handler = handler
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = int(self._sock.getsockname()[1])
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.stop = threading.Event()  # handlers that loop check it to end early
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            self.handler(conn)

    def __enter__(self) -> RawServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        typ: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        self._sock.close()
        for conn in self._conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(5)
