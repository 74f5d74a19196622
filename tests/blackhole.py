"""A TCP proxy on loopback that can stop forwarding without closing anything: the network
partition with no reset that a hung link or middlebox leaves (ADR 0025)."""

from __future__ import annotations

import contextlib
import socket
import threading


class Blackhole:
    """Forwards each connection made to `port` to `target` until `cut`: from then on what
    either side sends is accepted (the kernel acknowledges it) and dropped, and new
    connections are accepted and forwarded nowhere; `mend` forwards again. Threads are
    daemons; `close` closes every socket."""

    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._forwarding = threading.Event()
        self._forwarding.set()
        self._sockets: list[socket.socket] = [self._listener]
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        self._forwarding.clear()

    def mend(self) -> None:
        self._forwarding.set()

    def close(self) -> None:
        for sock in self._sockets:
            with contextlib.suppress(OSError):
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:  # closed
                return
            upstream = socket.create_connection(self._target)
            self._sockets += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                if self._forwarding.is_set():
                    sink.sendall(data)
        for sock in (source, sink):
            with contextlib.suppress(OSError):
                sock.close()
