"""Progress reporting: a small protocol the engine calls, with a no-op default. The
tqdm renderer lives with the CLI; the engine never prints."""

from __future__ import annotations

from typing import Protocol


class Progress(Protocol):
    def start(self, description: str, total_bytes: int | None, done_bytes: int) -> None:
        """An upload of ``total_bytes`` begins, ``done_bytes`` of them already on the server
        (``total_bytes`` None: a stream, whose size is known only when it ends)."""

    def advance(self, nbytes: int) -> None:
        """``nbytes`` more bytes were acknowledged by the server."""

    def close(self) -> None:
        """The upload ended (successfully or not)."""


class NullProgress:
    """Reports nothing."""

    def start(self, description: str, total_bytes: int | None, done_bytes: int) -> None:
        pass

    def advance(self, nbytes: int) -> None:
        pass

    def close(self) -> None:
        pass
