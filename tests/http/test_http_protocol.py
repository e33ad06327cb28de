"""`tandem serve` sends each HTTP response in one write (app/http_protocol.py); HTTP itself is unchanged.

Against real servers over real sockets: a `tandem serve` process, whose write system calls its
`/proc/<pid>/io` counts, and the app under uvicorn in a thread (`LiveServer`, which runs the same
protocol) for pipelined requests, `Connection: close` and a response far larger than one write.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import httpx
import orjson
import pytest

from app.graphiql import node_modules_dir
from app.main import create_app
from app.settings import Settings
from tests.live_server import LiveServer, server_process

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)

BODY = orjson.dumps({"query": "{ __typename }"})
REQUEST = (b"POST /graphql HTTP/1.1\r\nHost: tandem\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY))


def _write_calls(pid: int) -> int:
    fields = dict(line.split(": ") for line in Path(f"/proc/{pid}/io").read_text().splitlines())
    return int(fields["syscw"])


def _read_response(connection: socket.socket, pending: bytes = b"") -> tuple[bytes, bytes, bytes]:
    """(head, body, what came after it) of one response with a `content-length`."""
    data = pending
    while b"\r\n\r\n" not in data:
        data += _received(connection)
    head, _, rest = data.partition(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:"))
    while len(rest) < length:
        rest += _received(connection)
    return head, rest[:length], rest[length:]


def _received(connection: socket.socket) -> bytes:
    chunk = connection.recv(1 << 20)
    if not chunk:
        raise AssertionError("the server closed the connection mid-response")
    return chunk


def _env(settings: Settings) -> dict[str, str]:
    return {"TANDEM_DATABASE_URL": settings.database_url, "TANDEM_KEYS_DIR": str(settings.keys_dir),
            "TANDEM_LOG_JSON": "false"}


def test_each_answer_is_one_write(settings: Settings) -> None:
    with server_process(_env(settings)) as (url, pid), \
            socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as connection:
        for _ in range(5):  # warm: the document is cached, the limiter's bucket made
            connection.sendall(REQUEST)
            _read_response(connection)
        time.sleep(0.2)  # start-up writes (logs) are over
        before = _write_calls(pid)
        answers = []
        for _ in range(50):
            connection.sendall(REQUEST)
            answers.append(_read_response(connection))
        writes = _write_calls(pid) - before
    assert all(head.startswith(b"HTTP/1.1 200") and orjson.loads(body)["data"] == {"__typename": "Query"}
               for head, body, _ in answers)
    assert writes == 50  # uvicorn alone writes head and body apart: 100


async def test_pipelined_requests_are_answered_in_order(settings: Settings) -> None:
    queries = [orjson.dumps({"query": f"{{ n{number}: __typename }}"}) for number in range(3)]
    pipelined = b"".join(b"POST /graphql HTTP/1.1\r\nHost: tandem\r\nContent-Type: application/json\r\n"
                         b"Content-Length: %d\r\n\r\n%s" % (len(query), query) for query in queries)
    async with LiveServer(create_app(settings)) as live:
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as connection:
            connection.sendall(pipelined)
            rest = b""
            for number in range(3):
                head, body, rest = _read_response(connection, rest)
                assert head.startswith(b"HTTP/1.1 200")
                assert orjson.loads(body)["data"] == {f"n{number}": "Query"}


async def test_connection_close_gets_the_whole_answer_then_the_end(settings: Settings) -> None:
    request = REQUEST.replace(b"Host: tandem\r\n", b"Host: tandem\r\nConnection: close\r\n")
    async with LiveServer(create_app(settings)) as live:
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as connection:
            connection.sendall(request)
            received = b""
            while chunk := connection.recv(1 << 16):
                received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"connection: close" in head.lower()
    assert orjson.loads(body)["data"] == {"__typename": "Query"}


def test_a_large_response_arrives_whole(settings: Settings) -> None:
    """The GraphiQL bundle (~3.5 MB) is written in many chunks, past the transport's flow control."""
    bundle = (settings.node_modules_dir or node_modules_dir()) / "graphiql" / "graphiql.min.js"
    with LiveServer(create_app(settings)) as live, httpx.Client(base_url=live.url, timeout=30) as http:
        answers = [http.get("/graphiql/vendor/graphiql.min.js") for _ in range(2)]
    assert [answer.status_code for answer in answers] == [200, 200]
    assert answers[0].content == answers[1].content == bundle.read_bytes()
