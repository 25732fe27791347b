"""Upload settings: ``UploadConfig``, a frozen dataclass validated on construction, and
size parsing (``64MiB``). No I/O here.

Size units follow the AWS CLI: K, KB and KiB all mean 1024 (likewise M, G, T)."""

from __future__ import annotations

import dataclasses
import enum
import re
import urllib.parse
from collections.abc import Mapping

from .errors import ConfigError

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = MAX_PARTS * MAX_PART_SIZE  # 48.8 TiB
DEFAULT_PART_SIZE = 32 * MiB  # measured: see the README, "Choosing sizes"
DEFAULT_CONCURRENCY = 8
MAX_CONCURRENCY = 1024

_UNITS = {"": 1, "b": 1, "k": KiB, "m": MiB, "g": GiB, "t": TiB}
_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str | int) -> int:
    """Parse ``"64MiB"``, ``"5G"``, ``"1048576"`` into bytes; ConfigError when malformed."""
    if isinstance(text, int):
        if text < 0:
            raise ConfigError(f"size must not be negative: {text}")
        return text
    if text.strip().startswith("-"):
        raise ConfigError(f"size must not be negative: {text!r}")
    match = _SIZE_RE.match(text)
    if not match or (match.group(2) == "" and text.strip().lower().endswith("ib")):
        raise ConfigError(f"malformed size {text!r} (examples: 64MiB, 5GiB, 8388608)")
    value = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if value != int(value):
        raise ConfigError(f"size {text!r} is not a whole number of bytes")
    return int(value)


def format_size(n: int) -> str:
    """Human-readable binary size: ``16.0 MiB``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class ChecksumAlgorithm(enum.Enum):
    """Checksum sent with every part; declared at CreateMultipartUpload."""

    CRC32C = "crc32c"
    CRC32 = "crc32"
    CRC64NVME = "crc64nvme"
    SHA256 = "sha256"
    SHA1 = "sha1"  # composite only, as SHA-256; S3 and SeaweedFS take it
    NONE = "none"

    @classmethod
    def parse(cls, name: str) -> ChecksumAlgorithm:
        try:
            return cls(name.lower())
        except ValueError:
            choices = "|".join(a.value for a in cls)
            raise ConfigError(f"unknown checksum algorithm {name!r} (choose {choices})") from None

    @property
    def s3_name(self) -> str:
        """The name S3 uses in ChecksumAlgorithm and in ``Checksum<NAME>`` parameters."""
        return self.value.upper()


class ServerSideEncryption(enum.Enum):
    AES256 = "AES256"
    KMS = "aws:kms"


@dataclasses.dataclass(frozen=True)
class UploadConfig:
    """Every setting of an upload. ``part_size=None`` picks the default and grows it so a
    file never needs more than 10,000 parts; ``memory_limit=None`` means
    ``concurrency * part_size``."""

    part_size: int | None = None
    concurrency: int = DEFAULT_CONCURRENCY
    memory_limit: int | None = None
    multipart_threshold: int | None = None
    checksum: ChecksumAlgorithm = ChecksumAlgorithm.CRC32C
    max_attempts: int = 5
    backoff_base_s: float = 0.25
    backoff_max_s: float = 20.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 120.0
    max_bandwidth: int | None = None  # bytes per second, every connection and file together
    # where
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    verify_tls: bool = True
    # what the object gets
    content_type: str | None = None
    metadata: Mapping[str, str] = dataclasses.field(default_factory=dict)
    storage_class: str | None = None
    sse: ServerSideEncryption | None = None
    sse_kms_key_id: str | None = None
    sse_c_key: bytes | None = dataclasses.field(default=None, repr=False)
    request_payer: bool = False
    expected_bucket_owner: str | None = None
    # how it is written
    no_overwrite: bool = False  # never replace an existing object (If-None-Match: *)
    checksum_type: str | None = None  # FULL_OBJECT (default for CRCs) or COMPOSITE
    content_md5: bool = False  # each request body's MD5 as Content-MD5, for the server to check

    def __post_init__(self) -> None:
        if self.part_size is not None and not MIN_PART_SIZE <= self.part_size <= MAX_PART_SIZE:
            raise ConfigError(
                f"part size {format_size(self.part_size)} is outside S3's limits "
                f"({format_size(MIN_PART_SIZE)} to {format_size(MAX_PART_SIZE)})"
            )
        if not 1 <= self.concurrency <= MAX_CONCURRENCY:
            raise ConfigError(f"concurrency must be 1..{MAX_CONCURRENCY}, not {self.concurrency}")
        if self.memory_limit is not None and self.memory_limit < MIN_PART_SIZE:
            raise ConfigError(
                f"memory limit {format_size(self.memory_limit)} is smaller than one part "
                f"({format_size(MIN_PART_SIZE)} at least)"
            )
        if self.memory_limit is not None and self.part_size is not None:
            if self.memory_limit < self.part_size:
                raise ConfigError(
                    f"memory limit {format_size(self.memory_limit)} is smaller than one part "
                    f"({format_size(self.part_size)})"
                )
        if self.multipart_threshold is not None and self.multipart_threshold < 0:
            raise ConfigError("multipart threshold must not be negative")
        if self.max_attempts < 1:
            raise ConfigError("max attempts must be at least 1")
        for name, value in (("connect timeout", self.connect_timeout_s),
                            ("read timeout", self.read_timeout_s)):
            if not 0 < value < float("inf"):
                raise ConfigError(f"{name} must be a positive number of seconds, not {value}")
        if self.max_bandwidth is not None and self.max_bandwidth < 1024:
            raise ConfigError(f"max bandwidth {self.max_bandwidth} B/s is below the minimum "
                              "of 1 KiB/s")
        if self.sse_c_key is not None:
            if len(self.sse_c_key) != 32:
                raise ConfigError("an SSE-C key must be exactly 32 bytes (AES-256)")
            if self.sse is not None:
                raise ConfigError("SSE-C cannot be combined with --sse")
        if self.endpoint_url is not None:
            self._check_endpoint(self.endpoint_url)
        if self.sse_kms_key_id and self.sse is not ServerSideEncryption.KMS:
            raise ConfigError("--sse-kms-key-id needs --sse aws:kms")
        if self.checksum_type is not None:
            if self.checksum_type not in ("FULL_OBJECT", "COMPOSITE"):
                raise ConfigError(f"unknown checksum type {self.checksum_type!r} "
                                  "(choose full-object or composite)")
            if self.checksum in (ChecksumAlgorithm.SHA256, ChecksumAlgorithm.SHA1) and \
                    self.checksum_type == "FULL_OBJECT":
                raise ConfigError(f"{self.checksum.value} checksums can only be composite "
                                  "(S3's rule)")
            if self.checksum is ChecksumAlgorithm.CRC64NVME and self.checksum_type == "COMPOSITE":
                raise ConfigError("crc64nvme checksums are always full-object (S3's rule)")
        if problem := metadata_problem(self.metadata):
            raise ConfigError(problem)

    def _check_endpoint(self, url: str) -> None:
        """An endpoint is ``http(s)://host[:port]``; an SSE-C key never goes over plain
        http, whoever asks (the CLI, the API, a job resumed from the journal)."""
        parts = urllib.parse.urlsplit(url)
        if "://" not in url:
            raise ConfigError(f"endpoint URL {url!r} has no scheme: write http://{url} "
                              f"(or https://{url} for TLS)")
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"endpoint URL {url!r} is not http(s)://host[:port]")
        if self.sse_c_key is not None and parts.scheme.lower() == "http":
            raise ConfigError(f"SSE-C over plain http ({url}) would send the key in the clear; "
                              "use an https:// endpoint")

    def effective_memory_limit(self, part_size: int) -> int:
        """Bytes of part data that may be in flight at once for this part size."""
        limit = self.memory_limit if self.memory_limit is not None else self.concurrency * part_size
        if limit < part_size:
            raise ConfigError(
                f"memory limit {format_size(limit)} is smaller than one part "
                f"({format_size(part_size)})"
            )
        return limit


def metadata_problem(metadata: Mapping[str, str]) -> str | None:
    """What is wrong with user metadata, or None. S3 sends it as ``x-amz-meta-*`` HTTP
    headers, which carry US-ASCII only (botocore refuses anything else, at the first
    request, after a multipart upload or a batch job was already created): a name of
    printable ASCII, a value of printable ASCII or spaces (no control character, no line
    break)."""
    for name, value in metadata.items():
        if not name or not all(c.isascii() and c.isprintable() for c in name):
            return f"invalid metadata key {name!r}"
        if not all(c.isascii() and c.isprintable() for c in value):
            return (f"metadata {name}={value!r}: S3 user metadata must be printable US-ASCII "
                    "(it travels in HTTP headers); percent-encode the value, for example")
    return None
