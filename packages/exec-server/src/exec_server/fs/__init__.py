"""The file-system RPCs (``fs/*``, docs/protocol.md §9): one :class:`FsService` per session."""

from ._service import MAX_BLOCK_LEN, FsService

__all__ = ["MAX_BLOCK_LEN", "FsService"]
