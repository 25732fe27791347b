"""One object's upload, as state machines and their drivers.

Pure (no I/O; import no driver):
- ``machine``: ``Phase``, ``Step``, the shared state value ``UploadMachine``, the
  decisions (``Close``, ``Reaction``), ``choose_kind``, and how the store's answers are
  read (the predicates at its end);
- ``put_machine``, ``multipart_machine``, ``stream_machine``: the kinds, each with its own
  transitions (a stream's machine is a multipart machine that never reconciles);
- ``result``: ``UploadResult``.

Drivers (execute the machines' steps against the store, the journal and the scheduler):
- ``driver``: ``Job`` (asked and planned), ``Services``, the step loop;
- ``put``, ``multipart``, ``stream``: one driver per kind (``stream`` also has
  ``PartBuffers``, a stream's reused part buffers); ``multipart_core``: what the multipart
  kinds' drivers share (Create, guarded Complete, Verify, ``close``);
- ``listing``: ListParts reconciled with the journal and the file, the listing-lag loop,
  the sweep for lost Creates, the check that aborted uploads are gone;
- ``parts``: the part reader (``digest_parts``), ``PartSender``, ``abort_upload``;
- ``existing``: ``--skip-existing``.

A new kind (a server-side copy) is a machine with its steps and a driver for them,
registered with ``transfer.DRIVERS`` and chosen by ``choose_kind``; a stream is a kind by
its source (``Transfer.run`` picks it by the source's type). Verification
("is this object ours") is ``verify``'s, for every kind and for ``--skip-existing``."""

from .machine import Phase
from .result import UploadResult

__all__ = ["Phase", "UploadResult"]
