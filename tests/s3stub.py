"""A tiny S3 on 127.0.0.1 that answers with every field the AWS reference documents for
the multipart calls, for the fields SeaweedFS and moto leave out (Initiator, Owner,
AbortDate, AbortRuleId, RequestCharged, part checksums of every algorithm, SSE answers).

It runs ``http.server`` in a thread (over TLS when given a context, for SSE-C), records
every request (method, path, query, headers, body length), and keeps uploads in memory:
CreateMultipartUpload, UploadPart (checking Content-MD5 as S3 does: BadDigest), ListParts
(pages, MaxParts, PartNumberMarker), CompleteMultipartUpload, AbortMultipartUpload,
ListMultipartUploads, PutObject and HeadObject. ``FIELDS_UPLOAD`` is an upload made by
another tool, whose parts carry a checksum of a different algorithm each. Answers are
what the reference shows; nothing is signed or checked beyond Content-MD5."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import http.server
import ssl
import threading
import urllib.parse
from typing import Any
from xml.sax.saxutils import escape

FIELDS_UPLOAD = "upload-with-every-field"
INITIATOR = ("arn:aws:iam::111122223333:user/uploader", "uploader")
OWNER = ("75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a", "owner-name")
ABORT_DATE = "Wed, 28 Oct 2026 00:00:00 GMT"
ABORT_RULE = "abort-after-7-days"
KMS_KEY = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
# the parts of FIELDS_UPLOAD: (number, size, S3's checksum name, value)
FIELD_PARTS = [
    (1, 5 << 20, "CRC32", "AAAAAQ=="),
    (2, 5 << 20, "CRC32C", "AAAAAg=="),
    (3, 5 << 20, "CRC64NVME", "AAAAAAAAAAM="),
    (4, 5 << 20, "SHA1", base64.b64encode(hashlib.sha1(b"4").digest()).decode()),
    (5, 1234, "SHA256", base64.b64encode(hashlib.sha256(b"5").digest()).decode()),
]
LAST_MODIFIED = "2026-10-21T09:08:07.654Z"
SSE_HEADERS = {
    "x-amz-server-side-encryption": "aws:kms",
    "x-amz-server-side-encryption-aws-kms-key-id": KMS_KEY,
    "x-amz-server-side-encryption-bucket-key-enabled": "true",
    "x-amz-request-charged": "requester",
}


@dataclasses.dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # names in lower case
    length: int

    @property
    def operation(self) -> str:
        q = self.query
        if self.method == "GET":
            return "ListParts" if "uploadId" in q else "ListMultipartUploads" if "uploads" in q \
                else "GetObject"
        if self.method == "PUT":
            return "UploadPart" if "partNumber" in q else "PutObject"
        if self.method == "POST":
            return "CreateMultipartUpload" if "uploads" in q else "CompleteMultipartUpload"
        return {"DELETE": "AbortMultipartUpload", "HEAD": "HeadObject"}.get(self.method, "?")


@dataclasses.dataclass
class StubPart:
    size: int
    etag: str
    checksums: dict[str, str]  # S3 name -> value, as sent


@dataclasses.dataclass
class StubUpload:
    bucket: str
    key: str
    algorithm: str | None
    checksum_type: str | None
    parts: dict[int, StubPart] = dataclasses.field(default_factory=dict)


class S3Stub:
    def __init__(self, tls: ssl.SSLContext | None = None, page_size: int = 1000) -> None:
        self.tls = tls
        self.page_size = page_size
        self.fail_parts: set[int] = set()  # UploadPart of these numbers answers 500
        self.seen: list[Seen] = []
        self.uploads: dict[str, StubUpload] = {}
        self.objects: dict[tuple[str, str], tuple[int, str]] = {}  # size, ETag
        self._next = 0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint_url(self) -> str:
        assert self._server is not None
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    def add_fields_upload(self, bucket: str, key: str) -> None:
        parts = {n: StubPart(size, f'"{hashlib.md5(str(n).encode()).hexdigest()}"', {name: value})
                 for n, size, name, value in FIELD_PARTS}
        self.uploads[FIELDS_UPLOAD] = StubUpload(bucket, key, "CRC32C", "COMPOSITE", parts)

    def requests(self, operation: str) -> list[Seen]:
        return [s for s in self.seen if s.operation == operation]

    def __enter__(self) -> S3Stub:
        stub = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                split = urllib.parse.urlsplit(self.path)
                query = dict(urllib.parse.parse_qsl(split.query, keep_blank_values=True))
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                seen = Seen(self.command, urllib.parse.unquote(split.path), query,
                            {k.lower(): v for k, v in self.headers.items()}, len(body))
                with stub._lock:
                    stub.seen.append(seen)
                    status, headers, content = stub.answer(seen, body)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                if self.command != "HEAD" or "Content-Length" not in headers:
                    self.send_header("Content-Length", str(len(content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    # the answers

    def answer(self, seen: Seen, body: bytes) -> tuple[int, dict[str, str], bytes]:
        bucket, _, key = seen.path.lstrip("/").partition("/")
        op = seen.operation
        if op == "ListParts":
            return self._list_parts(seen)
        if op == "ListMultipartUploads":
            return self._list_uploads(bucket, seen.query.get("prefix", ""))
        if op == "AbortMultipartUpload":
            if self.uploads.pop(seen.query["uploadId"], None) is None:
                return _error(404, "NoSuchUpload")
            return 204, {"x-amz-request-charged": "requester"}, b""
        if op == "CreateMultipartUpload":
            self._next += 1
            upload_id = f"stub-upload-{self._next}"
            self.uploads[upload_id] = StubUpload(
                bucket, key, seen.headers.get("x-amz-checksum-algorithm"),
                seen.headers.get("x-amz-checksum-type"))
            return 200, dict(SSE_HEADERS), _xml("InitiateMultipartUploadResult",
                                                Bucket=bucket, Key=key, UploadId=upload_id)
        if op in ("UploadPart", "PutObject"):
            md5 = seen.headers.get("content-md5")
            if md5 is not None and md5 != base64.b64encode(hashlib.md5(body).digest()).decode():
                return _error(400, "BadDigest")
            etag = f'"{hashlib.md5(body).hexdigest()}"'
            sums = {h[len("x-amz-checksum-"):].upper(): v for h, v in seen.headers.items()
                    if h.startswith("x-amz-checksum-") and h not in ("x-amz-checksum-algorithm",
                                                                     "x-amz-checksum-type")}
            echo = {f"x-amz-checksum-{name.lower()}": v for name, v in sums.items()}
            if op == "PutObject":
                self.objects[(bucket, key)] = (len(body), etag)
                return 200, {"ETag": etag, **SSE_HEADERS, **echo}, b""
            upload = self.uploads.get(seen.query["uploadId"])
            if upload is None:
                return _error(404, "NoSuchUpload")
            if int(seen.query["partNumber"]) in self.fail_parts:
                return _error(500, "InternalError")
            upload.parts[int(seen.query["partNumber"])] = StubPart(len(body), etag, sums)
            return 200, {"ETag": etag, **SSE_HEADERS, **echo}, b""
        if op == "CompleteMultipartUpload":
            upload = self.uploads.pop(seen.query["uploadId"], None)
            if upload is None:
                return _error(404, "NoSuchUpload")
            digests = b"".join(bytes.fromhex(p.etag.strip('"'))
                               for _, p in sorted(upload.parts.items()))
            etag = f'"{hashlib.md5(digests).hexdigest()}-{len(upload.parts)}"'
            self.objects[(bucket, key)] = (sum(p.size for p in upload.parts.values()), etag)
            return 200, dict(SSE_HEADERS), _xml("CompleteMultipartUploadResult",
                                                Bucket=bucket, Key=key, ETag=etag)
        if op == "HeadObject":
            found = self.objects.get((bucket, key))
            if found is None:
                return 404, {}, b""
            return 200, {"Content-Length": str(found[0]), "ETag": found[1],
                         "Last-Modified": "Wed, 21 Oct 2099 09:08:07 GMT",
                         **SSE_HEADERS}, b""
        return _error(400, "NotImplemented")

    def _list_parts(self, seen: Seen) -> tuple[int, dict[str, str], bytes]:
        upload_id = seen.query["uploadId"]
        upload = self.uploads.get(upload_id)
        if upload is None:
            return _error(404, "NoSuchUpload")
        size = int(seen.query.get("max-parts") or self.page_size)
        marker = int(seen.query.get("part-number-marker") or 0)
        numbers = [n for n in sorted(upload.parts) if n > marker]
        page, truncated = numbers[:size], len(numbers) > size
        parts = "".join(
            "<Part>" + _elements(PartNumber=n, LastModified=LAST_MODIFIED,
                                 ETag=upload.parts[n].etag, Size=upload.parts[n].size,
                                 **{f"Checksum{name}": value
                                    for name, value in upload.parts[n].checksums.items()})
            + "</Part>" for n in page)
        body = _xml("ListPartsResult", Bucket=upload.bucket, Key=upload.key, UploadId=upload_id,
                    PartNumberMarker=marker, NextPartNumberMarker=page[-1] if page else marker,
                    MaxParts=size, IsTruncated="true" if truncated else "false",
                    Initiator=_owner(INITIATOR), Owner=_owner(OWNER), StorageClass="STANDARD_IA",
                    ChecksumAlgorithm=upload.algorithm or "",
                    ChecksumType=upload.checksum_type or "", _raw=parts)
        return 200, {"x-amz-abort-date": ABORT_DATE, "x-amz-abort-rule-id": ABORT_RULE,
                     "x-amz-request-charged": "requester"}, body

    def _list_uploads(self, bucket: str, prefix: str) -> tuple[int, dict[str, str], bytes]:
        entries = "".join(
            "<Upload>" + _elements(Key=u.key, UploadId=upload_id, Initiator=_owner(INITIATOR),
                                   Owner=_owner(OWNER), StorageClass="STANDARD_IA",
                                   Initiated=LAST_MODIFIED, ChecksumAlgorithm=u.algorithm or "",
                                   ChecksumType=u.checksum_type or "") + "</Upload>"
            for upload_id, u in sorted(self.uploads.items())
            if u.bucket == bucket and u.key.startswith(prefix))
        return 200, {"x-amz-request-charged": "requester"}, _xml(
            "ListMultipartUploadsResult", Bucket=bucket, KeyMarker="", UploadIdMarker="",
            Prefix=prefix, MaxUploads=1000, IsTruncated="false", _raw=entries)


class _Raw(str):
    """XML already built (a nested element's content)."""


def _owner(owner: tuple[str, str]) -> _Raw:
    return _Raw(_elements(ID=owner[0], DisplayName=owner[1]))


def _elements(**fields: object) -> str:
    def text(value: object) -> str:
        return value if isinstance(value, _Raw) else escape(str(value))

    return "".join(f"<{name}>{text(value)}</{name}>" for name, value in fields.items()
                   if value != "")


def _xml(root: str, _raw: str = "", **fields: object) -> bytes:
    return (f'<?xml version="1.0" encoding="UTF-8"?>\n<{root} '
            f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/">{_elements(**fields)}{_raw}'
            f"</{root}>").encode()


def _error(status: int, code: str) -> tuple[int, dict[str, str], bytes]:
    return status, {}, _xml("Error", Code=code, Message=f"stub: {code}")
