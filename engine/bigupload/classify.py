"""What a failed request means: one table from an S3 answer (its error code, its HTTP
status) to the error class, whether to retry, whether to slow down, whether the failure
stops a whole batch job, and the few facts callers act on (the upload is gone, the
precondition failed, the server does not implement conditional writes, ...).

This is the only place that reads S3 error codes. ``StoreError`` (errors.py) looks its
``code`` and ``status`` up here when it is made and carries the answer as attributes
(``err.retryable``, ``err.throttle``, ``err.fatal_for_job``, ``err.upload_gone``, ...),
so every error with the same answer behaves the same, however it was raised; the
scheduler, the transfer and the batch runner read those attributes and never compare
codes. The adapters in client.py only turn botocore and aiohttp failures into a code and a
status (a failure without an HTTP answer has status ``NO_ANSWER``); exceptions they do not
know (a bug) are re-raised unchanged, never classified.

Lookup: the code first (S3's ``<Code>``, botocore's name for a bodiless answer such as
``"404"``, or our own name for a failure without an answer such as
``"ConnectionRefusedError"``); an unknown code falls back to its status; anything else is
a refusal: not retried, exit 7. The table, as it reads:

    answer                               class           retry throttle job  flag
    InvalidAccessKeyId, ExpiredToken,    AuthError         -      -    stop
      SignatureDoesNotMatch, ...,
      NoCredentials, TLS trust
    AccessDenied, AllAccessDisabled, 403 AuthError         -      -     -
    NoSuchBucket                         NotFoundError     -      -    stop
    NoSuchUpload                         NotFoundError     -      -     -   upload_gone
    NoSuchKey, NotFound, 404 on HEAD     NotFoundError     -      -     -   object_missing
    BadDigest, InvalidDigest, ...        IntegrityError   yes     -     -
    PreconditionFailed, 412              StoreError        -      -     -   precondition_failed
    ConditionalRequestConflict (409)     StoreError       yes     -    stop conditional_conflict
    NotImplemented, 501                  StoreError        -      -     -   conditions_unsupported
                                                                            unsupported_option
    InvalidRequest, InvalidArgument      StoreError        -      -     -   unsupported_option
      whose message names a checksum
    PermanentRedirect, 301, 307, ...     StoreError        -      -     -   redirect
    SlowDown, Throttling, ..., 429, 503  StoreError       yes    yes   stop
    InternalError, RequestTimeout, 5xx   StoreError       yes     -    stop
    connection refused, connect timeout  StoreError       yes     -    stop never_reached_server
    other failures without an answer     StoreError       yes     -    stop
    NotS3, SSLError, InvalidBucketName   StoreError        -      -    stop
    anything else                        StoreError        -      -     -

"stop" (fatal for a job): every other file of the job would meet the same failure, so
the job stops, resumable, instead of recording it file after file. Every retryable
failure that outlasted its retries stops a job too (an outage), except an integrity one
(this file's bytes); ``StoreError`` applies that rule to errors made with an explicit
``retryable`` as well.

This module is a leaf: it imports nothing from the package, and names the error class
by ``Kind`` (errors.py holds the classes)."""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping

NO_ANSWER = 0  # the status of a failure without an HTTP answer (connection, timeout)


class Kind(enum.Enum):
    """Which ``StoreError`` class an answer becomes (``errors.STORE_ERROR_CLASSES``)."""

    STORE = "StoreError"  # exit 5 if retryable, else 7
    AUTH = "AuthError"  # exit 4
    NOT_FOUND = "NotFoundError"  # exit 7
    INTEGRITY = "IntegrityError"  # exit 6


@dataclasses.dataclass(frozen=True)
class Rule:
    """One row of the table."""

    kind: Kind = Kind.STORE
    retryable: bool = False  # sending the same request again may succeed
    throttle: bool = False  # the server asks for fewer requests: back off and slow down
    fatal_for_job: bool = False  # every file of a batch job would fail the same way
    upload_gone: bool = False  # NoSuchUpload: the multipart upload was aborted or completed
    precondition_failed: bool = False  # 412: If-Match / If-None-Match did not hold
    conditional_conflict: bool = False  # 409: a concurrent conditional write to the key
    conditions_unsupported: bool = False  # 501: the server ignores no If-* header, it refuses
    unsupported_option: bool = False  # the server refuses an option it does not implement
    redirect: bool = False  # the bucket lives elsewhere (another region or address)
    never_reached_server: bool = False  # no connection was made: the request did nothing
    object_missing: bool = False  # no object at the key (HEAD's bodiless 404)


REFUSED = Rule()
CREDENTIALS = Rule(Kind.AUTH, fatal_for_job=True)
DENIED = Rule(Kind.AUTH)
CORRUPTED = Rule(Kind.INTEGRITY, retryable=True)
TRANSIENT = Rule(retryable=True, fatal_for_job=True)
THROTTLED = Rule(retryable=True, throttle=True, fatal_for_job=True)
NOT_CONNECTED = Rule(retryable=True, fatal_for_job=True, never_reached_server=True)
UNREACHABLE = Rule(fatal_for_job=True)  # the endpoint or bucket, for every file
REDIRECTED = Rule(redirect=True)
NOT_IMPLEMENTED = Rule(conditions_unsupported=True, unsupported_option=True)
PRECONDITION = Rule(precondition_failed=True)
OBJECT_MISSING = Rule(Kind.NOT_FOUND, object_missing=True)

BY_CODE: Mapping[str, Rule] = {
    # credentials and trust: no request of the job can succeed
    **dict.fromkeys(["InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken",
                     "InvalidToken", "TokenRefreshRequired", "AccountProblem",
                     "NoCredentials", "ProfileNotFound", "CertificateVerifyFailed"], CREDENTIALS),
    # permissions, which may differ from key to key
    **dict.fromkeys(["AccessDenied", "AllAccessDisabled", "403"], DENIED),
    "NoSuchBucket": Rule(Kind.NOT_FOUND, fatal_for_job=True),
    "NoSuchUpload": Rule(Kind.NOT_FOUND, upload_gone=True),
    **dict.fromkeys(["NoSuchKey", "NotFound", "404"], OBJECT_MISSING),
    **dict.fromkeys(["BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch",
                     "InvalidChecksum"], CORRUPTED),
    **dict.fromkeys(["PreconditionFailed", "412"], PRECONDITION),
    # a concurrent write to the key raced ours: sending again settles it
    "ConditionalRequestConflict": Rule(retryable=True, fatal_for_job=True,
                                       conditional_conflict=True),
    **dict.fromkeys(["NotImplemented", "501"], NOT_IMPLEMENTED),
    # the lean PutObject path signed for the wrong region or address: botocore finds it
    **dict.fromkeys(["PermanentRedirect", "TemporaryRedirect", "301", "307",
                     "AuthorizationHeaderMalformed", "IllegalLocationConstraintException"],
                    REDIRECTED),
    **dict.fromkeys(["SlowDown", "Throttling", "ThrottlingException", "RequestLimitExceeded",
                     "TooManyRequests", "429", "503"], THROTTLED),
    **dict.fromkeys(["ServiceUnavailable", "InternalError", "RequestTimeout",
                     "RequestTimeTooSkewed", "OperationAborted", "MalformedResponse",
                     "500", "502", "504"], TRANSIENT),
    # no connection was made (client.py names these failures by their exception;
    # ConnectError is leanhttp's)
    **dict.fromkeys(["ConnectionError", "ClientConnectorError", "ClientConnectionError",
                     "ConnectTimeoutError", "ConnectionRefusedError", "ConnectError"],
                    NOT_CONNECTED),
    # not an S3 API, a broken TLS session, a bucket name S3 refuses: the same for every file
    **dict.fromkeys(["NotS3", "SSLError", "InvalidBucketName"], UNREACHABLE),
}

# an answer whose code is not in BY_CODE (another server's name, or none)
BY_STATUS: Mapping[int, Rule] = {
    NO_ANSWER: TRANSIENT,
    301: REDIRECTED,
    307: REDIRECTED,
    412: PRECONDITION,
    429: THROTTLED,
    501: NOT_IMPLEMENTED,
    503: THROTTLED,
}

# 400s that some servers use to refuse a checksum algorithm or type they do not implement
# (S3 itself says InvalidRequest); only when the message names a checksum
OPTION_REFUSALS = frozenset({"InvalidRequest", "InvalidArgument"})
BODILESS_OPERATIONS = frozenset({"HeadObject"})  # S3 names a missing key in a body elsewhere


def classify(code: str, status: int | None = None, *, operation: str = "",
             message: str = "") -> Rule:
    """The row for an answer. ``code`` is S3's error code (or a bodiless answer's status as
    botocore names it, or a failure's name); ``status`` the HTTP status (``NO_ANSWER`` for
    none, None when unknown); ``operation`` and ``message`` refine two rows: a bodiless 404
    is a missing object only for HEAD (anything else answering it is not an S3 API),
    and a 400 refuses an option only when it names a checksum."""
    if status is None and code.isdigit():
        status = int(code)
    rule = BY_CODE.get(code)
    if rule is None and status is not None:
        rule = BY_STATUS.get(status) or (TRANSIENT if status >= 500 else None)
    rule = rule or REFUSED
    if rule.object_missing and code == "404" and operation and operation not in BODILESS_OPERATIONS:
        return Rule(Kind.NOT_FOUND)
    if code in OPTION_REFUSALS and "checksum" in message.lower():
        return dataclasses.replace(rule, unsupported_option=True)
    return rule
