"""Keeps secrets out of everything bigupload prints. The client registers the secrets it
holds (the secret access key, the session token, an SSE-C key in every encoding it is
sent in) the moment it has them; ``redact`` replaces them, and the values of headers that
carry secrets, with ``***``. The CLI formats every log line, error message and traceback
through it, so ``--debug`` output (which includes botocore's request dumps) is safe to
paste into an issue."""

from __future__ import annotations

import base64
import logging
import re

_secrets: set[str] = set()
# botocore's debug dumps print headers as dict items: 'name': b'value' or 'name': 'value'
_SECRET_HEADERS = re.compile(
    r"(?i)((?:x-amz-security-token|x-amz-server-side-encryption-customer-key|"
    r"x-amz-copy-source-server-side-encryption-customer-key|sseCustomerKey|SecurityToken|"
    r"aws_secret_access_key|aws_session_token)['\"]?\s*[:=]\s*b?['\"]?)([^'\"\s,}]+)"
)
_MIN_SECRET = 8  # shorter values would redact ordinary words


def add_secret(value: str | bytes | None) -> None:
    """Never print ``value`` (and, for bytes, its base64, hex and text forms)."""
    if not value:
        return
    if isinstance(value, bytes):
        forms = {base64.b64encode(value).decode(), value.hex(), repr(value)[2:-1]}
        try:
            forms.add(value.decode())
        except UnicodeDecodeError:
            pass
    else:
        forms = {value}
    _secrets.update(f for f in forms if len(f) >= _MIN_SECRET)


def redact(text: str) -> str:
    text = _SECRET_HEADERS.sub(lambda m: m.group(1) + "***", text)
    for secret in sorted(_secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, "***")
    return text


class RedactingFormatter(logging.Formatter):
    """A formatter whose output, tracebacks included, has passed through ``redact``."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))
