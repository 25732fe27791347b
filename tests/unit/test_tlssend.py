"""The pure parts of ``tlssend``: the aws-chunked length announced before the body (checked
against a body framed by hand, as S3 documents the format), the Host header botocore
signs, and a header value that would split the request refused."""

from __future__ import annotations

import pytest

from bigupload import tlssend


def _framed_by_hand(length: int, chunk: int, name: str, value: str) -> bytes:
    out = b""
    for start in range(0, length, chunk):
        size = min(chunk, length - start)
        out += hex(size)[2:].encode() + b"\r\n" + b"x" * size + b"\r\n"
    return out + b"0\r\n" + f"{name}:{value}\r\n\r\n".encode()


@pytest.mark.parametrize("length", [1, 15, 16, 17, 1000, 4096, 5 * 4096 + 3])
def test_the_announced_length_is_the_framed_body_s(length: int) -> None:
    body = _framed_by_hand(length, 16, "x-amz-checksum-crc32c", "AAAAAA==")
    assert tlssend.framed_length(length, "x-amz-checksum-crc32c", 8, chunk=16) == len(body)


def test_trailer_headers() -> None:
    headers = tlssend.trailer_headers(1000, "x-amz-checksum-crc64nvme", 12)
    assert headers["Content-Encoding"] == "aws-chunked"
    assert headers["X-Amz-Decoded-Content-Length"] == "1000"
    assert headers["X-Amz-Trailer"] == "x-amz-checksum-crc64nvme"
    assert headers["X-Amz-Content-SHA256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert tlssend.trailer_headers(1, "x", 8, "gzip")["Content-Encoding"] == "gzip,aws-chunked"


@pytest.mark.parametrize("url,host", [
    ("https://s3.example.com/b/k", "s3.example.com"),
    ("https://s3.example.com:443/b/k", "s3.example.com"),
    ("https://127.0.0.1:9443/b/k?partNumber=1", "127.0.0.1:9443"),
    ("https://[::1]:9443/b/k", "[::1]:9443"),
])
def test_the_host_header_is_the_one_botocore_signs(url: str, host: str) -> None:
    assert tlssend.host_header(url) == host


@pytest.mark.parametrize("value", ["a\r\nEvil: 1", "a\nb", "a\0b"])
def test_a_header_that_would_split_the_request_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="invalid character"):
        tlssend._request_head("PUT", "/b/k", "h", {"x-amz-meta-a": value}, 1)
