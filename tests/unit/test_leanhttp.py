"""leanhttp, LeanPut's HTTP/1.1 client, against a scripted server on 127.0.0.1: keep-alive
reuse, answers framed every way HTTP allows, timeouts and refused connections named as
``client.map_error`` expects, and no header that could split a request."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from bigupload.leanhttp import Client, ConnectError
from bigupload.store_errors import map_error

Answer = Callable[[int], bytes | None]  # request number -> raw answer (None: say nothing)


class Server:
    """Reads each request (head, then Content-Length bytes) and writes ``answer(n)``."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests: list[bytes] = []
        self.tasks: list[asyncio.Task[None]] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.append(task)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                              if line.lower().startswith(b"content-length:"))
                body = await reader.readexactly(length)
                self.requests.append(head + body)
                raw = self.answer(len(self.requests))
                if raw is None:
                    await asyncio.sleep(30)
                    return
                writer.write(raw)
                await writer.drain()
                if raw.startswith(b"HTTP/1.0") or b"Connection: close" in raw:
                    return
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def run(answer: Answer, puts: int, **settings: float) -> tuple[Server, list[object]]:
    server = Server(answer)

    async def main() -> list[object]:
        listening = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        client = Client(connect_timeout=settings.get("connect", 5.0),
                        read_timeout=settings.get("read", 5.0), tls=False, user_agent="t/1")
        out: list[object] = []
        try:
            for n in range(puts):
                try:
                    async with client.put(f"http://127.0.0.1:{port}/b/k%20{n}", data=b"x" * n,
                                          headers={"x-amz-date": "20260101T000000Z"}) as got:
                        out.append((got.status, got.headers, await got.read()))
                except (OSError, TimeoutError) as exc:
                    out.append(exc)
        finally:
            await client.aclose()
            listening.close()
            for task in server.tasks:
                task.cancel()
            await asyncio.gather(*server.tasks, return_exceptions=True)
        return out

    return server, asyncio.run(main())


OK = b"HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\n\r\n"


def test_one_connection_carries_every_request_and_sends_them_as_given() -> None:
    server, out = run(lambda n: OK, 3)
    assert server.connections == 1
    assert [o[0] for o in out] == [200] * 3  # type: ignore[index]
    assert out[0][1]["etag"] == '"e"'  # type: ignore[index]
    first = server.requests[1].split(b"\r\n")
    assert first[0] == b"PUT /b/k%201 HTTP/1.1"
    assert b"Content-Length: 1" in first and first[-1] == b"x"


def test_answers_framed_by_chunks_or_by_the_end_of_the_connection() -> None:
    xml = b"<Error><Code>SlowDown</Code></Error>"
    chunked = (b"HTTP/1.1 503 Slow Down\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % 10 + xml[:10] + b"\r\n" + b"%x\r\n" % (len(xml) - 10) + xml[10:]
               + b"\r\n0\r\n\r\n")
    closing = b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi"
    unframed = b"HTTP/1.0 200 OK\r\n\r\nto the end"
    answers = {1: chunked, 2: closing, 3: b"HTTP/1.1 100 Continue\r\n\r\n" + OK, 4: unframed}
    server, out = run(lambda n: answers[n], 4)
    assert [(o[0], o[2]) for o in out] == [  # type: ignore[index]
        (503, xml), (200, b"hi"), (200, b""), (200, b"to the end")]
    assert server.connections == 2  # a new one after "Connection: close" only


def test_a_server_that_never_answers_is_a_read_timeout() -> None:
    _, out = run(lambda n: None, 1, read=0.2)
    assert isinstance(out[0], TimeoutError)
    error = map_error(out[0], "PutObject", "b", "k", timeouts=(5, 0.2))
    assert "timed out after 0.2 s (--read-timeout)" in str(error)
    assert error.retryable and not error.never_reached_server


def test_a_refused_connection_never_reached_the_server() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nobody listens there

    async def main() -> BaseException:
        client = Client(connect_timeout=5, read_timeout=5, tls=False, user_agent="t/1")
        try:
            async with client.put(f"http://127.0.0.1:{port}/b/k", data=b"", headers={}):
                pass
        except ConnectError as exc:
            return exc
        finally:
            await client.aclose()
        raise AssertionError("connected")

    error = map_error(asyncio.run(main()), "PutObject", "b", "k")
    assert error.retryable and error.never_reached_server


def test_no_header_can_carry_a_line_break() -> None:
    async def main() -> None:
        client = Client(connect_timeout=5, read_timeout=5, tls=False, user_agent="t/1")
        listening = await asyncio.start_server(Server(lambda n: OK).handle, "127.0.0.1", 0)
        port = listening.sockets[0].getsockname()[1]
        try:
            async with client.put(f"http://127.0.0.1:{port}/b/k", data=b"",
                                  headers={"x-amz-meta-a": "1\r\nEvil: yes"}):
                pass
        finally:
            await client.aclose()
            listening.close()

    with pytest.raises(ValueError, match="newline"):
        asyncio.run(main())


def test_an_answer_never_awaited_is_not_logged_as_never_retrieved() -> None:
    """A request stopped while writing its body (SIGTERM, an error) never awaits its
    answer; the connection closing then must not make asyncio log "Future exception was
    never retrieved" under the one-line interrupted message."""
    import gc

    from bigupload.leanhttp import _Connection

    seen: list[str] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _, context: seen.append(context["message"]))
        connection = _Connection(loop, read_timeout=5.0)
        connection.expect()  # the request began, its body was being written...
        connection._drained = loop.create_future()  # ...and waited for the socket
        connection.connection_lost(None)  # then the task was cancelled, the socket closed
        del connection
        gc.collect()
        await asyncio.sleep(0)

    asyncio.run(main())
    assert seen == []
