"""uvicorn's httptools protocol, sending each HTTP response in one write instead of two.

uvicorn writes a response's head when the app sends `http.response.start` and its body when the app
sends `http.response.body`: two system calls, and on a local or fast network two TCP segments, each
waking the client. For a small JSON answer that is a good part of what serving it costs: the kernel's
side of a write is CPU time of the server process (`bench/typename.py`).

`CoalescingTransport` stands between the protocol and the connection's transport: what is written
during one turn of the event loop goes out in one `write` at the start of the next turn (a head and a
body sent back to back, several pipelined answers). Flow control is untouched: past `FLUSH_BYTES`
pending it writes at once, so the transport's own buffer limits and `pause_writing` apply as before;
`close()` and `write_eof()` write what is pending first, `abort()` drops it. A WebSocket upgrade hands
the plain transport to the WebSocket protocol.

Shutting down, uvicorn closes idle keep-alive connections at once; a client that sent its next request
in that instant gets no answer and cannot know whether it ran. Here an idle connection stays open for
`DRAIN_SECONDS`: a request arriving meanwhile is answered with `Connection: close`, then the connection
closes, so the client reconnects (elsewhere) knowing its request was answered, or never sent.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

FLUSH_BYTES = 64 * 1024
DRAIN_SECONDS = 1.0


class CoalescingTransport:
    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(bytes(data))
        self._pending_bytes += len(data)
        if self._pending_bytes >= FLUSH_BYTES:
            self.flush()

    def writelines(self, chunks: Any) -> None:
        for chunk in chunks:
            self.write(chunk)

    def flush(self) -> None:
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._pending_bytes = 0
        if not self.transport.is_closing():
            self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self._pending = []
        self._pending_bytes = 0
        self.transport.abort()

    def get_write_buffer_size(self) -> int:
        return self.transport.get_write_buffer_size() + self._pending_bytes

    def __getattr__(self, name: str) -> Any:  # everything else is the transport's own
        return getattr(self.transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """Pass as uvicorn's `http` option (`tandem serve` does)."""

    _draining = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]

    def shutdown(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._draining = True
            self.loop.call_later(DRAIN_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False  # its answer is the last: `Connection: close`

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if not self.transport.is_closing() and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()

    def handle_websocket_upgrade(self) -> None:
        wrapped = self.transport
        if isinstance(wrapped, CoalescingTransport):
            wrapped.flush()
            self.transport = wrapped.transport
        super().handle_websocket_upgrade()
