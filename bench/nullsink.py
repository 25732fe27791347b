"""A null sink: an HTTP/1.1 server on 127.0.0.1 that speaks just enough of the S3 API for
every benchmarked client to upload a file, and throws the bodies away. It measures a
client's own ceiling, with the server costing no more than the kernel's copy out of the
socket.

Answered: CreateMultipartUpload, UploadPart (ETag and any x-amz-checksum-* echoed back),
ListParts (paged at 1,000), ListMultipartUploads (empty), CompleteMultipartUpload, PutObject, HeadObject
(the size of what was stored, 404 for unknown keys), HeadBucket, CreateBucket, DeleteObject
and AbortMultipartUpload. Bodies may be Content-Length or chunked framed, with or without
``Expect: 100-continue``.

    python bench/nullsink.py [--port 0]    # prints "READY <port>" once listening
    python bench/nullsink.py --tls-cert cert.pem --tls-key key.pem [--tls-log tls.log]

With ``--tls-cert`` it serves HTTPS (Python's ``ssl``, so the sink's own decryption runs
in its process, never the client's), and ``--tls-log`` appends one line per connection:
the TLS version and cipher that client negotiated. ``--first-request-log`` appends the
arrival time (``time.time()``) of the first request on each connection, so a benchmark can
tell how long a client took to send anything (bench/batch.py's resume probe).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import ssl
import sys
import time
from urllib.parse import parse_qs, unquote, urlsplit

RECV_BUFFER = 1 << 20
_upload_ids = itertools.count(1)


class Store:
    """Sizes of what was 'stored', so HEAD answers like a real server would."""

    def __init__(self) -> None:
        self.objects: dict[str, int] = {}
        self.uploads: dict[str, dict[int, int]] = {}


def _xml(body: str) -> bytes:
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode()


class S3Sink(asyncio.BufferedProtocol):
    def __init__(self, store: Store) -> None:
        self.store = store
        self.buffer = bytearray(RECV_BUFFER)
        self.view = memoryview(self.buffer)
        self.head = bytearray()
        self.in_body = False
        self.remaining = 0        # Content-Length bytes still to discard
        self.chunked: bytearray | None = None  # pending chunk-framing text when chunked
        self.chunk_left = 0
        self.chunk_done = False
        self.body_size = 0
        self.keep_body: bytearray | None = None  # small bodies we need (CompleteMultipartUpload)
        self.request: tuple[str, str, dict[str, str]] | None = None
        self.trailers: list[str] = []  # echoed trailing checksums (aws-chunked bodies)

    tls_log: str | None = None
    first_request_log: str | None = None
    logged = False  # this connection's first request was logged

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None and self.tls_log:
            with open(self.tls_log, "a") as log:
                log.write(f"{ssl_object.version()} {ssl_object.cipher()[0]}\n")

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        data = self.view[:nbytes]
        while data:
            if not self.in_body:
                data = self._feed_head(data)
            elif self.chunked is not None:
                data = self._feed_chunked(data)
            else:
                take = min(len(data), self.remaining)
                self._consume(data[:take])
                self.remaining -= take
                data = data[take:]
                if self.remaining == 0:
                    self._respond()

    def _consume(self, data: memoryview) -> None:
        self.body_size += len(data)
        if self.keep_body is not None:
            self.keep_body += data

    def _feed_head(self, data: memoryview) -> memoryview:
        start = max(0, len(self.head) - 3)
        self.head += data
        end = self.head.find(b"\r\n\r\n", start)
        if end < 0:
            return data[len(data):]
        extra = len(self.head) - (end + 4)
        text = bytes(self.head[:end]).decode("latin-1")
        self.head = bytearray()
        lines = text.split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.request = (method, target, headers)
        if self.first_request_log and not self.logged:
            self.logged = True
            with open(self.first_request_log, "a") as log:
                log.write(f"{time.time():.6f}\n")
        self.in_body = True
        self.body_size = 0
        self.keep_body = bytearray() if method == "POST" else None
        if headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.trailers = []  # echoed trailing checksums
        # aws-chunked (trailing checksums) inside a Content-Length body has the syntax of
        # HTTP chunked framing; its trailer is echoed, as S3 echoes it
        if "chunked" in headers.get("transfer-encoding", "").lower() or (
                "aws-chunked" in headers.get("content-encoding", "").lower()):
            self.chunked = bytearray()
            self.chunk_left = 0
            self.chunk_done = False
        else:
            self.chunked = None
            self.remaining = int(headers.get("content-length", "0"))
        rest = data[len(data) - extra:] if extra else data[len(data):]
        if self.chunked is None and self.remaining == 0:
            self._respond()
        return rest

    def _feed_chunked(self, data: memoryview) -> memoryview:
        """Chunked framing: a size line, that many bytes, CRLF; a zero size ends it,
        followed by optional trailers and an empty line."""
        assert self.chunked is not None
        if self.chunk_left:
            take = min(len(data), self.chunk_left)
            self._consume(data[:take])
            self.chunk_left -= take
            return data[take:]
        self.chunked += data[:1]
        data = data[1:]
        pending = self.chunked
        if not self.chunk_done:
            if pending.endswith(b"\r\n"):
                line = bytes(pending[:-2]).split(b";")[0].strip()
                self.chunked = bytearray()
                if not line:  # the CRLF that closes a data chunk
                    return data
                size = int(line, 16)
                if size == 0:
                    self.chunk_done = True
                    self.chunked = bytearray(b"\r\n")  # trailers end at an empty line
                else:
                    self.chunk_left = size
        elif pending.endswith(b"\r\n\r\n"):
            for line in bytes(pending).decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                if name.strip().lower().startswith("x-amz-checksum-"):
                    self.trailers.append(f"{name.strip().lower()}: {value.strip()}")
            self.chunked = None
            self._respond()
        return data

    def _respond(self) -> None:
        assert self.request is not None
        method, target, headers = self.request
        self.in_body = False
        self.chunked = None
        split = urlsplit(target)
        query = parse_qs(split.query, keep_blank_values=True)
        path = unquote(split.path)
        bucket, _, key = path.lstrip("/").partition("/")
        extra = [f"{name}: {value}" for name, value in headers.items()
                 if name.startswith("x-amz-checksum-") and name != "x-amz-checksum-algorithm"]
        extra += self.trailers
        status, body = "200 OK", b""
        store = self.store
        if method == "POST" and "uploads" in query:
            upload_id = f"sink-{next(_upload_ids)}"
            store.uploads[upload_id] = {}
            body = _xml(f"<InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                        f"<UploadId>{upload_id}</UploadId></InitiateMultipartUploadResult>")
        elif method == "PUT" and "uploadId" in query:
            parts = store.uploads.setdefault(query["uploadId"][0], {})
            number = int(query.get("partNumber", ["1"])[0])
            parts[number] = self.body_size
            extra.append(f'ETag: "{number:032x}"')
        elif method == "POST" and "uploadId" in query:
            parts = store.uploads.pop(query["uploadId"][0], {})
            store.objects[path] = sum(parts.values())
            body = _xml(f"<CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                        f'<ETag>"{0:032x}-{len(parts)}"</ETag></CompleteMultipartUploadResult>')
            extra = []
        elif method == "GET" and "uploadId" in query:
            parts = store.uploads.get(query["uploadId"][0], {})
            marker = int(query.get("part-number-marker", ["0"])[0] or 0)
            page = sorted(n for n in parts if n > marker)[:1000]
            truncated = bool(page) and page[-1] < max(parts)
            listed = "".join(f'<Part><PartNumber>{n}</PartNumber><ETag>"{n:032x}"</ETag>'
                             f"<Size>{parts[n]}</Size></Part>" for n in page)
            body = _xml(f"<ListPartsResult><Bucket>{bucket}</Bucket><Key>{key}</Key>"
                        f"<UploadId>{query['uploadId'][0]}</UploadId>"
                        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>"
                        f"<NextPartNumberMarker>{page[-1] if page else marker}</NextPartNumberMarker>"
                        f"{listed}</ListPartsResult>")
        elif method == "GET" and "uploads" in query:
            body = _xml(f"<ListMultipartUploadsResult><Bucket>{bucket}</Bucket>"
                        "<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>")
        elif method == "GET" and not key:  # ListObjectsV2: always empty (rclone copy lists first)
            body = _xml(f"<ListBucketResult><Name>{bucket}</Name><KeyCount>0</KeyCount>"
                        "<IsTruncated>false</IsTruncated></ListBucketResult>")
        elif method == "PUT" and key:
            store.objects[path] = self.body_size
            extra.append(f'ETag: "{0:032x}"')
        elif method == "PUT":
            pass  # CreateBucket
        elif method == "HEAD" and key:
            if path not in store.objects:
                status = "404 Not Found"
            else:
                extra += [f"Content-Length: {store.objects[path]}", f'ETag: "{0:032x}"']
        elif method == "DELETE":
            status = "204 No Content"
            store.uploads.pop(query.get("uploadId", [""])[0], None)
            if "uploadId" not in query:
                store.objects.pop(path, None)
        elif method == "HEAD":
            pass  # HeadBucket
        else:
            status = "404 Not Found"
        lines = [f"HTTP/1.1 {status}", "Server: bigupload-nullsink", "x-amz-request-id: 0", *extra]
        if method != "HEAD":
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.transport.write(head + body)


async def serve(port: int, tls: ssl.SSLContext | None = None) -> None:
    store = Store()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: S3Sink(store), "127.0.0.1", port, backlog=256,
                                      ssl=tls)
    print(f"READY {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--tls-cert", help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", help="and this private key (PEM)")
    parser.add_argument("--tls-log", help="append each connection's TLS version and cipher here")
    parser.add_argument("--first-request-log",
                        help="append the arrival time of each connection's first request here")
    args = parser.parse_args()
    S3Sink.first_request_log = args.first_request_log
    tls = None
    if args.tls_cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.tls_cert, args.tls_key)
        S3Sink.tls_log = args.tls_log
    try:
        import uvloop
        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    try:
        runner(serve(args.port, tls))
    except KeyboardInterrupt:
        sys.exit(0)


if __name__ == "__main__":
    main()
