"""A fault-injecting HTTP/1.1 proxy for tests, on 127.0.0.1 between the engine and a real
S3-compatible server. It runs its own asyncio loop in a thread and forwards each request
unchanged unless a rule says otherwise. Rules are scriptable per request (by operation,
part number, count or probability) and choose one of the ``FAULTS``; ``hold`` rules stop
a request before or after the server sees it, so a test can kill the client at an exact
moment. Every request is logged with what was done to it and how far it got.

Only what the engine sends needs to be understood: requests carry a Content-Length body;
responses carry a Content-Length or chunked body (or none, for HEAD, 204 and 304)."""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import random
import socket
import ssl
import urllib.parse
import struct
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs, urlsplit

CHUNK = 1 << 20

# What each fault does to a request:
FAULTS = {
    "slowdown": "answer 503 SlowDown without forwarding",
    "internal": "answer 500 InternalError without forwarding",
    "reset_before": "reset the connection after the request head, before the body",
    "reset_during": "reset the connection half-way through the request body",
    "reset_after": "forward the request, then reset instead of relaying the response",
    "stall": "forward the request, then hold the response past the client's read timeout",
    "malformed": "forward, then relay the response body cut in half (XML responses)",
    "bad_etag": "forward, then relay a 200 whose ETag is not the part's",
    "bad_checksum": "forward, then relay a 200 whose checksum header is not the part's",
    "no_such_upload": "answer 404 NoSuchUpload without forwarding",
    "access_denied": "answer 403 AccessDenied without forwarding",
}
# Faults that make sense for each operation (a body-less request cannot be cut mid-body,
# and only XML responses can be malformed).
APPLICABLE = {
    "UploadPart": ["slowdown", "internal", "reset_before", "reset_during", "reset_after", "stall",
                   "bad_etag", "bad_checksum"],
    "PutObject": ["slowdown", "internal", "reset_before", "reset_during", "reset_after", "stall",
                  "bad_checksum"],
    "CreateMultipartUpload": ["slowdown", "internal", "reset_before", "reset_after", "stall",
                              "malformed"],
    "CompleteMultipartUpload": ["slowdown", "internal", "reset_before", "reset_after", "stall",
                                "malformed"],
    "ListParts": ["slowdown", "internal", "reset_before", "reset_after", "stall", "malformed"],
    "HeadObject": ["slowdown", "internal", "reset_before", "reset_after", "stall"],
}


@dataclasses.dataclass
class Request:
    method: str
    target: str  # as received: re-encoding the query would break the signature
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    operation: str
    part_number: int | None
    upload_id: str | None

    @property
    def length(self) -> int:
        return int(self.headers.get("content-length", "0"))


@dataclasses.dataclass
class Record:
    """One request as the proxy saw it."""

    operation: str
    part_number: int | None
    upload_id: str | None
    fault: str | None = None
    forwarded: bool = False  # the whole request reached the server
    relayed: bool = False  # the whole response reached the client
    status: int | None = None
    path: str = ""  # /bucket/key, decoded
    body: int = 0  # the request body's length (Content-Length)


@dataclasses.dataclass
class Rule:
    """Apply ``action`` (a fault name, ``hold_before`` or ``hold_after``) to requests that
    ``match``, at most ``times`` times (None: always), each with ``probability``."""

    match: Callable[[Request], bool]
    action: str
    times: int | None = 1
    probability: float = 1.0
    reached: threading.Event = dataclasses.field(default_factory=threading.Event)
    released: threading.Event = dataclasses.field(default_factory=threading.Event)
    dropped: bool = False

    def release(self, *, drop: bool = False) -> None:
        """Let a held request go on; ``drop`` resets its connection instead, so a request
        held from a client that has since been killed never reaches the server late."""
        self.dropped = drop
        self.released.set()


def operation_of(method: str, query: dict[str, str]) -> str:
    if method == "POST" and "uploads" in query:
        return "CreateMultipartUpload"
    if method == "PUT" and "partNumber" in query:
        return "UploadPart"
    if method == "GET" and "uploadId" in query:
        return "ListParts"
    if method == "POST" and "uploadId" in query:
        return "CompleteMultipartUpload"
    if method == "DELETE" and "uploadId" in query:
        return "AbortMultipartUpload"
    if method == "GET" and "uploads" in query:
        return "ListMultipartUploads"
    return {"PUT": "PutObject", "HEAD": "HeadObject", "GET": "GetObject",
            "DELETE": "DeleteObject"}.get(method, method)


def on(operation: str | Iterable[str], part: int | None = None) -> Callable[[Request], bool]:
    """A rule matcher: these operations (and this part number, if given)."""
    names = {operation} if isinstance(operation, str) else set(operation)
    return lambda r: r.operation in names and (part is None or r.part_number == part)


def _error_response(status: int, reason: str, code: str, message: str) -> bytes:
    body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>faultproxy</RequestId></Error>").encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode()
    return head + body


CANNED = {
    "slowdown": (503, "Slow Down", "SlowDown", "Please reduce your request rate."),
    "internal": (500, "Internal Server Error", "InternalError", "We encountered an internal error."),
    "no_such_upload": (404, "Not Found", "NoSuchUpload", "The specified upload does not exist."),
    "access_denied": (403, "Forbidden", "AccessDenied", "Access Denied"),
}


class Reset(Exception):
    """Close the client connection with a TCP reset."""


class FaultProxy:
    """``with FaultProxy(upstream_port) as proxy:`` then point the engine at
    ``proxy.endpoint_url``. ``tls`` serves HTTPS to the client (the upstream stays http)."""

    def __init__(self, upstream_port: int, *, tls: ssl.SSLContext | None = None, seed: int = 0,
                 stall_s: float = 3.0) -> None:
        self.upstream_port = upstream_port
        self.tls = tls
        self.stall_s = stall_s
        self.rules: list[Rule] = []
        self.log: list[Record] = []
        self.rate = 0.0
        self.random_kinds: dict[str, list[str]] = {}
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._server: asyncio.AbstractServer | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    # control (from the test's thread)

    @property
    def endpoint_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def add(self, match: Callable[[Request], bool], action: str, times: int | None = 1,
            probability: float = 1.0) -> Rule:
        assert action in FAULTS or action in ("hold_before", "hold_after"), action
        rule = Rule(match, action, times, probability)
        with self._lock:
            self.rules.append(rule)
        return rule

    def hold(self, match: Callable[[Request], bool], *, after: bool = False) -> Rule:
        """Stop the next matching request before it is forwarded (or, ``after``, once the
        server answered but before the client sees the answer) until ``rule.release()``;
        ``rule.reached`` is set when it happens."""
        return self.add(match, "hold_after" if after else "hold_before")

    def inject(self, rate: float, kinds: dict[str, list[str]] | None = None) -> None:
        """Fault a ``rate`` fraction of requests, choosing among ``kinds[operation]``."""
        with self._lock:
            self.rate = rate
            self.random_kinds = kinds if kinds is not None else APPLICABLE

    def clear(self, *, drop: bool = False) -> None:
        """Remove (and release) every rule; the ``inject`` rate stays."""
        with self._lock:
            for rule in self.rules:
                rule.release(drop=drop)
            self.rules.clear()

    def injected(self) -> collections.Counter[str]:
        return collections.Counter(r.fault for r in self.log if r.fault and not r.fault.startswith("hold"))

    def records(self, operation: str) -> list[Record]:
        return [r for r in self.log if r.operation == operation]

    def __enter__(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._serve, name="faultproxy", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
        if self._loop is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)

    # the proxy (its own thread and loop)

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        self._server = loop.run_until_complete(
            asyncio.start_server(self._client, "127.0.0.1", 0, ssl=self.tls, limit=1 << 16))
        self.port = self._server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    async def _shutdown(self) -> None:
        """Close the listener and finish every connection's task, so none is left pending."""
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()  # each connection's task then ends on its own
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        await asyncio.wait(tasks, timeout=5) if tasks else None

    def _choose(self, request: Request) -> tuple[str | None, Rule | None]:
        with self._lock:
            for rule in self.rules:
                if (rule.times is None or rule.times > 0) and rule.match(request):
                    if rule.probability < 1.0 and self._rng.random() >= rule.probability:
                        continue
                    if rule.times is not None:
                        rule.times -= 1
                    return rule.action, rule
            kinds = self.random_kinds.get(request.operation)
            if self.rate and kinds and self._rng.random() < self.rate:
                return self._rng.choice(kinds), None
        return None, None

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._writers.add(writer)
        try:
            while True:
                request = await self._read_request(reader)
                if request is None:
                    return
                record = Record(request.operation, request.part_number, request.upload_id,
                                path=urllib.parse.unquote(request.target.split("?", 1)[0]),
                                body=request.length)
                self.log.append(record)
                action, rule = self._choose(request)
                record.fault = action
                if upstream is None or upstream[1].is_closing():
                    upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port,
                                                             limit=1 << 16)
                keep = await self._one(request, action, rule, record, reader, writer, upstream)
                if not keep:
                    return
        except Reset:
            _reset(writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            for w in (upstream[1], writer) if upstream is not None else (writer,):
                w.close()
                try:
                    await w.wait_closed()
                except (ConnectionError, ssl.SSLError, OSError):
                    pass

    async def _one(self, request: Request, action: str | None, rule: Rule | None, record: Record,
                   reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter]) -> bool:
        """Handle one request; False closes the connection."""
        if action in CANNED:
            await _drain(reader, request.length)
            writer.write(_error_response(*CANNED[action]))
            await writer.drain()
            record.status = CANNED[action][0]
            record.relayed = True
            return True
        if action == "reset_before":
            raise Reset
        if action == "hold_before":
            await _hold(rule)
        up_reader, up_writer = upstream
        up_writer.write(_head(request))
        remaining = request.length
        if action == "reset_during":
            remaining = request.length // 2
        while remaining:
            chunk = await reader.read(min(CHUNK, remaining))
            if not chunk:
                raise ConnectionError("client closed mid-body")
            up_writer.write(chunk)
            await up_writer.drain()
            remaining -= len(chunk)
        if action == "reset_during":
            raise Reset
        await up_writer.drain()
        record.forwarded = True
        status, head, body = await _read_response(up_reader, request.method)
        record.status = status
        if action == "reset_after":
            raise Reset
        if action == "hold_after":
            await _hold(rule)
        if action == "stall":
            await asyncio.sleep(self.stall_s)
            return False
        if action == "malformed" and body:
            body = body[: len(body) // 2]
        if action == "bad_etag":
            head["etag"] = '"0123456789abcdef0123456789abcdef"'
        if action == "bad_checksum":
            for name in head:
                if name.startswith("x-amz-checksum-") and name != "x-amz-checksum-type":
                    head[name] = "AAAAAA==" if len(head[name]) <= 8 else "A" * (len(head[name]) - 1) + "="
        writer.write(_response_head(status, head, body, request.method))
        if body:
            writer.write(body)
        await writer.drain()
        record.relayed = True
        return True

    async def _read_request(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return None
        lines = raw.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if "chunked" in headers.get("transfer-encoding", ""):
            raise ConnectionError("chunked request bodies are not supported by the fault proxy")
        split = urlsplit(target)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        number = query.get("partNumber")
        operation = operation_of(method, query)
        if "x-amz-copy-source" in headers:  # the server reads another object: a copy
            operation = {"UploadPart": "UploadPartCopy", "PutObject": "CopyObject"}.get(
                operation, operation)
        return Request(method, target, query, headers, operation,
                       int(number) if number else None, query.get("uploadId"))


def _head(request: Request) -> bytes:
    lines = [f"{request.method} {request.target} HTTP/1.1"]
    lines += [f"{name}: {value}" for name, value in request.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _read_response(reader: asyncio.StreamReader, method: str) -> tuple[int, dict[str, str], bytes]:
    raw = await reader.readuntil(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    head: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            head[name.strip().lower()] = value.strip()
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return status, head, b""
    if "chunked" in head.get("transfer-encoding", ""):
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            body += await reader.readexactly(size)
            await reader.readexactly(2)
        del head["transfer-encoding"]
        return status, head, bytes(body)
    return status, head, await reader.readexactly(int(head.get("content-length", "0")))


def _response_head(status: int, head: dict[str, str], body: bytes, method: str) -> bytes:
    if method != "HEAD":
        head["content-length"] = str(len(body))
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _drain(reader: asyncio.StreamReader, length: int) -> None:
    while length:
        chunk = await reader.read(min(CHUNK, length))
        if not chunk:
            raise ConnectionError("client closed mid-body")
        length -= len(chunk)


async def _hold(rule: Rule | None) -> None:
    """Tell the test a held request arrived, and wait until it is released; a dropped
    request resets its connection."""
    assert rule is not None
    rule.reached.set()
    while not rule.released.is_set():
        await asyncio.sleep(0.01)
    if rule.dropped:
        raise Reset


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a crashed server or a middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


def self_signed_tls(directory: str) -> tuple[ssl.SSLContext, str]:
    """A server context with a fresh self-signed certificate for 127.0.0.1, and the path of
    that certificate (to trust it explicitly)."""
    import datetime
    import ipaddress
    import os

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "bigupload-test")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    cert_path = os.path.join(directory, "cert.pem")
    key_path = os.path.join(directory, "key.pem")
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    with open(key_path, "wb") as f:
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context, cert_path


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.01)
