"""`tandem serve --workers N`: uvicorn's supervisor, closing the listening socket first when it stops.

The workers share one listening socket with the supervisor. Stopping, uvicorn's workers stop accepting
but the supervisor keeps its copy open until they have exited, so the kernel goes on completing
handshakes that nobody will accept: a client that reconnects then (say, after an answer with
`Connection: close`) sends its request into that queue and gets a reset when the socket finally
closes, never knowing whether the request ran. Closed first, the socket refuses new connections at
once, which a client can retry elsewhere safely: nothing was sent.
"""

from __future__ import annotations

from uvicorn.supervisors import Multiprocess


class Workers(Multiprocess):
    def terminate_all(self) -> None:
        for sock in self.sockets:
            sock.close()  # the workers close their copies as they begin to shut down
        super().terminate_all()
