"""AWS Signature Version 4 for one S3 request with an unsigned payload: the headers to
add. Pure (no I/O, no clock unless not given); a test checks it against botocore's own
signer. It exists so that small PutObject requests can skip botocore's per-request cost
(about 1.7 ms of CPU each, measured: see ``client.LeanPut``)."""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import time
from collections.abc import Mapping

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@functools.lru_cache(maxsize=4)
def _stamp(seconds: int) -> str:
    """x-amz-date for a second (many requests are signed within one)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(seconds))


@functools.lru_cache(maxsize=16)
def _signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = hmac.new(("AWS4" + secret).encode(), date.encode(), hashlib.sha256).digest()
    for part in (region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


def sign(method: str, host: str, path: str, headers: Mapping[str, str], *, access_key: str,
         secret_key: str, token: str | None, region: str, service: str = "s3",
         now: datetime.datetime | None = None) -> dict[str, str]:
    """Headers to send: ``headers`` plus x-amz-date, x-amz-content-sha256, the session
    token if any, and Authorization. ``path`` is already URI-encoded, as sent (S3 does not
    encode it twice); there is no query string. Every given header is signed."""
    amz_date = now.strftime("%Y%m%dT%H%M%SZ") if now is not None else _stamp(int(time.time()))
    date = amz_date[:8]
    out = dict(headers)
    out["x-amz-date"] = amz_date
    out["x-amz-content-sha256"] = UNSIGNED_PAYLOAD
    if token:
        out["x-amz-security-token"] = token
    canonical = {name.lower(): " ".join(str(value).split()) for name, value in out.items()}
    canonical["host"] = host
    names = sorted(canonical)
    signed_headers = ";".join(names)
    request = "\n".join([
        method, path, "",
        "".join(f"{name}:{canonical[name]}\n" for name in names),
        signed_headers, UNSIGNED_PAYLOAD,
    ])
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(request.encode()).hexdigest()])
    signature = hmac.digest(_signing_key(secret_key, date, region, service), to_sign.encode(),
                            "sha256").hex()
    out["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                            f"SignedHeaders={signed_headers}, Signature={signature}")
    return out
