"""Our SigV4 signer gives exactly the headers botocore's S3 signer gives."""

from __future__ import annotations

import datetime

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from bigupload import sigv4


@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize("path, headers", [
    ("/bucket/key.bin", {"Content-Type": "application/octet-stream"}),
    ("/bucket/a%20b/%C3%BCn%C3%AF.txt", {"Content-Type": "text/plain",
                                         "x-amz-checksum-crc32c": "yZRlqg==",
                                         "x-amz-meta-Owner": "  two  spaces ",
                                         "x-amz-storage-class": "STANDARD_IA"}),
])
def test_matches_botocore(path: str, headers: dict[str, str], token: str | None) -> None:
    request = AWSRequest(method="PUT", url=f"https://127.0.0.1:8333{path}", headers=dict(headers))
    request.context["client_config"] = Config(s3={"payload_signing_enabled": False})  # as ours
    S3SigV4Auth(Credentials("AK", "SK", token), "s3", "eu-west-1").add_auth(request)
    when = datetime.datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(
        tzinfo=datetime.timezone.utc)
    ours = sigv4.sign("PUT", "127.0.0.1:8333", path, headers, access_key="AK", secret_key="SK",
                      token=token, region="eu-west-1", now=when)
    assert request.headers["X-Amz-Date"] == ours["x-amz-date"]
    assert request.headers["X-Amz-Content-SHA256"] == ours["x-amz-content-sha256"]
    signed_theirs = request.headers["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    signed_ours = ours["Authorization"].split("SignedHeaders=")[1].split(",")[0]
    assert signed_ours == signed_theirs
    assert request.headers["Authorization"] == ours["Authorization"]
