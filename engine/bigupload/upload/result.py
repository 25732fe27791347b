"""``UploadResult``: what one upload did, as the public API returns it. A frozen value,
built by the upload machines when they reach DONE."""

from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class UploadResult:
    """What an upload did. ``checksum`` is the object's checksum as S3 reports it
    (``b64-N`` for a composite multipart checksum); ``full_object_checksum`` is the CRC
    of the whole file, combined from the part CRCs without re-reading the file.
    ``verified`` says whether the stored bytes were compared with the file (a checksum the
    server computed, or an MD5 ETag); with ``--checksum none`` and ETags that are not MD5s
    only the size was compared."""

    bucket: str
    key: str
    etag: str
    size: int
    part_size: int
    parts: int
    checksum_algorithm: str
    checksum: str | None
    full_object_checksum: str | None
    upload_id: str | None
    resumed_parts: int
    sent_bytes: int
    elapsed_s: float
    verified: bool = True  # False: only the size could be compared (--checksum none, ...)
    checksum_type: str | None = None  # FULL_OBJECT or COMPOSITE (multipart), as uploaded
    notices: tuple[str, ...] = ()  # what differs from what was asked (a resume's settings)
    # a server-side copy's source (s3://bucket/key): ``sent_bytes`` then counts what the
    # server copied this run, none of which passed through the client; ``verified`` says
    # whether the copy was compared with the source (its checksum, or its MD5 ETag)
    copied_from: str | None = None
