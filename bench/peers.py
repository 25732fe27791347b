"""The Python peers of the upload benchmark, one upload per process, so that the harness
measures each one's whole-process CPU and peak RSS with wait4. Runs in the peers'
virtual environment (.venv-peers), never in bigupload's.

    python bench/peers.py TOOL SETTINGS FILE BUCKET KEY ENDPOINT

TOOL is boto3, crt or obstore; SETTINGS is "defaults" or "tuned". Credentials come from
the standard AWS environment variables. Over https, the CA bundle in ``AWS_CA_BUNDLE`` is
trusted through each tool's own option (botocore reads the variable itself; the CRT gets
it as ``verify``, obstore as ``root_certificate``). Prints one line saying what ran."""

from __future__ import annotations

import os
import sys
from pathlib import Path

MiB = 1 << 20
PART = 16 * MiB
CONCURRENCY = 8


def boto3_upload(settings: str, path: str, bucket: str, key: str, endpoint: str) -> str:
    import boto3
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config

    if settings == "defaults":
        client = boto3.client("s3", endpoint_url=endpoint)
        client.upload_file(path, bucket, key)
        return "boto3 upload_file, TransferConfig() defaults"
    config = Config(request_checksum_calculation="when_required", max_pool_connections=CONCURRENCY,
                    s3={"payload_signing_enabled": False})
    client = boto3.client("s3", endpoint_url=endpoint, config=config)
    transfer = TransferConfig(multipart_chunksize=PART, max_concurrency=CONCURRENCY)
    client.upload_file(path, bucket, key, Config=transfer)
    return "boto3 upload_file, 16 MiB x 8, when_required (no checksum), unsigned payload"


def crt_upload(settings: str, path: str, bucket: str, key: str, endpoint: str) -> str:
    """The CRT transfer manager driven as the AWS CLI drives it. boto3's built-in CRT path
    ignores endpoint_url and would target AWS itself, so it is not used."""
    import boto3
    from s3transfer.crt import (
        BotocoreCRTCredentialsWrapper,
        BotocoreCRTRequestSerializer,
        CRTTransferManager,
        create_s3_crt_client,
    )

    session = boto3.session.Session()
    region = session.region_name or "us-east-1"
    credentials = BotocoreCRTCredentialsWrapper(session._session.get_credentials())
    part = PART if settings == "tuned" else 8 * MiB
    crt_client = create_s3_crt_client(
        region, crt_credentials_provider=credentials.to_crt_credentials_provider(),
        part_size=part, use_ssl=endpoint.startswith("https"),
        verify=os.environ.get("AWS_CA_BUNDLE") if endpoint.startswith("https") else None,
    )
    serializer = BotocoreCRTRequestSerializer(
        session._session, client_kwargs={"region_name": region, "endpoint_url": endpoint}
    )
    extra = {"ChecksumAlgorithm": "CRC32C"} if settings == "tuned" else {}
    with CRTTransferManager(crt_client, serializer) as manager:
        manager.upload(path, bucket, key, extra_args=extra).result()
    what = f"{type(manager).__name__}, {part // MiB} MiB parts"
    return what + (", CRC32C" if settings == "tuned" else ", defaults (CRC32)")


def obstore_upload(settings: str, path: str, bucket: str, key: str, endpoint: str) -> str:
    import obstore
    from obstore.store import S3Store

    options = {
        "endpoint": endpoint, "region": os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        "access_key_id": os.environ["AWS_ACCESS_KEY_ID"],
        "secret_access_key": os.environ["AWS_SECRET_ACCESS_KEY"],
        "virtual_hosted_style_request": False,
    }
    client_options: dict[str, object] = {"allow_http": True}
    if endpoint.startswith("https") and os.environ.get("AWS_CA_BUNDLE"):
        client_options["root_certificate"] = Path(os.environ["AWS_CA_BUNDLE"]).read_text()
    if settings == "defaults":
        store = S3Store(bucket, client_options=client_options, **options)
        with open(path, "rb") as f:
            obstore.put(store, key, f)
        return "obstore put, file object, defaults (signed payload)"
    store = S3Store(bucket, client_options=client_options, unsigned_payload=True, **options)
    obstore.put(store, key, Path(path), chunk_size=PART, max_concurrency=CONCURRENCY)
    return "obstore put, path input, 16 MiB x 8, unsigned payload (no checksum)"


TOOLS = {"boto3": boto3_upload, "crt": crt_upload, "obstore": obstore_upload}


def main() -> None:
    if len(sys.argv) != 7 or sys.argv[1] not in TOOLS or sys.argv[2] not in ("defaults", "tuned"):
        raise SystemExit(__doc__)
    tool, settings, path, bucket, key, endpoint = sys.argv[1:]
    print(TOOLS[tool](settings, path, bucket, key, endpoint), flush=True)


if __name__ == "__main__":
    main()
