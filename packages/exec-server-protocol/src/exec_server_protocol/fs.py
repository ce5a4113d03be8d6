"""`fs/*` messages (docs/protocol.md §9). Every path is a PathUri string."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from ._base import Params, Result, WireStruct
from .ids import HandleId
from .path_uri import PathUri
from .sandbox import SandboxIntent

FileOffset = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""A byte offset into a file: what ``off_t`` can hold."""

__all__ = [
    "CanonicalizeParams",
    "CanonicalizeResult",
    "CloseParams",
    "CopyParams",
    "CreateDirectoryParams",
    "DirectoryEntry",
    "FsParams",
    "GetMetadataParams",
    "Metadata",
    "MissingChangedNotification",
    "OpenParams",
    "OpenResult",
    "ReadBlockParams",
    "ReadBlockResult",
    "ReadDirectoryParams",
    "ReadDirectoryResult",
    "ReadFileParams",
    "ReadFileResult",
    "RemoveParams",
    "WalkEntry",
    "WalkError",
    "WalkOptions",
    "WalkParams",
    "WalkResult",
    "WatchMissingParams",
    "WatchMissingResult",
    "WriteBlockParams",
    "WriteBlockResult",
    "WriteFileParams",
]


class FsParams(Params):
    """Base of fs params: every fs method takes an optional sandbox intent."""

    sandbox: SandboxIntent | None = None


class ReadFileParams(FsParams, kw_only=True):
    path: PathUri


class ReadFileResult(Result):
    data_base64: str


class WriteFileParams(FsParams, kw_only=True):
    path: PathUri
    data_base64: str


class CreateDirectoryParams(FsParams, kw_only=True):
    path: PathUri
    recursive: bool | None = None


class GetMetadataParams(FsParams, kw_only=True):
    path: PathUri


class Metadata(Result):
    is_directory: bool
    is_file: bool
    is_symlink: bool
    size: int
    created_at_ms: int
    modified_at_ms: int


class ReadDirectoryParams(FsParams, kw_only=True):
    path: PathUri


class DirectoryEntry(WireStruct):
    file_name: str
    is_directory: bool
    is_file: bool


class ReadDirectoryResult(Result):
    entries: list[DirectoryEntry]


class RemoveParams(FsParams, kw_only=True):
    path: PathUri
    recursive: bool | None = None
    force: bool | None = None


class CopyParams(FsParams, kw_only=True):
    source_path: PathUri
    destination_path: PathUri
    recursive: bool = False


class CanonicalizeParams(FsParams, kw_only=True):
    path: PathUri


class CanonicalizeResult(Result):
    path: str


class WalkOptions(WireStruct):
    max_depth: int | None = None
    max_entries: int | None = None
    max_directories: int | None = None
    follow_directory_symlinks: bool = False
    prune_hidden_directories: bool = False


class WalkParams(FsParams, kw_only=True):
    path: PathUri
    options: WalkOptions = msgspec.field(default_factory=WalkOptions)


class WalkEntry(WireStruct):
    path: str
    kind: str
    """``"file"`` or ``"directory"``."""


class WalkError(WireStruct):
    """An entry the walk could not examine (the walk goes on without it)."""

    path: str
    message: str


class WalkResult(Result):
    entries: list[WalkEntry]
    errors: list[WalkError]
    truncated: bool


class OpenParams(FsParams, kw_only=True):
    handle_id: HandleId
    path: PathUri
    mode: Literal["read", "replace"] = "read"


class OpenResult(Result):
    handle_id: HandleId


class ReadBlockParams(Params):
    handle_id: HandleId
    offset: FileOffset
    len: int


class ReadBlockResult(Result):
    chunk: str
    eof: bool


class WriteBlockParams(Params):
    handle_id: HandleId
    offset: FileOffset
    chunk: str


class WriteBlockResult(Result):
    pass


class CloseParams(Params):
    handle_id: HandleId


class WatchMissingParams(Params):
    watch_id: int | str
    missing: list[PathUri]
    present: PathUri | None = None
    """A PathUri that must exist when the watch starts (the reference takes one string)."""


class WatchMissingResult(Result):
    watching: bool


class MissingChangedNotification(Params):
    watch_id: int | str
