"""`process/*` messages (docs/protocol.md §4-§6)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from ._base import Params, Result, WireStruct
from .ids import ProcessId, Seq, WriteId
from .path_uri import PathUri
from .sandbox import SandboxIntent

__all__ = [
    "EnvPolicy",
    "ListResult",
    "OutputChunk",
    "ProcessClosedNotification",
    "ProcessExitedNotification",
    "ProcessInfo",
    "ProcessOutputNotification",
    "PtySize",
    "ReadParams",
    "ReadResult",
    "ResizeParams",
    "ResourceUsage",
    "SandboxType",
    "SignalName",
    "SignalParams",
    "StartParams",
    "StartResult",
    "StreamName",
    "TerminateParams",
    "TerminateResult",
    "WriteParams",
    "WriteResult",
    "WriteStatus",
]

StreamName = Literal["stdout", "stderr", "pty"]
SandboxType = Literal["none", "linuxSeccomp"]
WriteStatus = Literal["accepted", "unknownProcess", "stdinClosed", "starting"]
"""``starting`` is the reference's answer to a write that races its spawn (its process entry is
not running yet); our server spawns before it answers ``process/start`` and never sends it, but
a client of ours retries on it, as it may talk to the reference."""
NonNegative = Annotated[int, msgspec.Meta(ge=0)]
SignalName = Literal["interrupt", "terminate", "kill", "hangup", "quit", "user1", "user2"]
"""`interrupt` is the reference's; the rest are ours."""


class EnvPolicy(WireStruct):
    """How the child environment is built from the *server's* environment."""

    inherit: Literal["all", "core", "none"] = "all"
    ignore_default_excludes: bool = False
    exclude: list[str] = msgspec.field(default_factory=list)
    set: dict[str, str] = msgspec.field(default_factory=dict)
    include_only: list[str] = msgspec.field(default_factory=list)


class PtySize(WireStruct):
    rows: Annotated[int, msgspec.Meta(ge=1, le=0xFFFF)] = 24
    cols: Annotated[int, msgspec.Meta(ge=1, le=0xFFFF)] = 80


class StartParams(Params):
    process_id: ProcessId
    argv: list[str]
    cwd: PathUri
    env: dict[str, str]
    tty: bool
    pipe_stdin: bool = False
    arg0: str | None = None
    env_policy: EnvPolicy | None = None
    sandbox: SandboxIntent | None = None
    enforce_managed_network: bool = False
    managed_network: dict[str, Any] | None = None
    """Accepted and not enforced (the executor has no managed network proxy); an object like
    the reference's, or null."""
    pty_size: PtySize | None = None
    """[ours] initial terminal size for `tty` processes (default 24x80)."""


class StartResult(Result):
    process_id: ProcessId
    sandbox_type: SandboxType


class ReadParams(Params):
    process_id: ProcessId
    after_seq: NonNegative | None = None
    max_bytes: NonNegative | None = None
    wait_ms: NonNegative | None = None


class OutputChunk(WireStruct):
    seq: Seq
    stream: StreamName
    chunk: str
    """Base64 of the bytes."""


class ResourceUsage(WireStruct):
    """[ours] resource usage of the exited process (from wait4)."""

    wall_ms: int
    user_cpu_ms: int
    system_cpu_ms: int
    max_rss_kb: int


class ReadResult(Result):
    chunks: list[OutputChunk]
    next_seq: int
    exited: bool
    exit_code: int | None
    closed: bool
    failure: str | None
    sandbox_denied: bool
    retained_from_seq: int
    """[ours] oldest seq still retained: output below it (and above afterSeq) was evicted."""
    signal: str | None = None
    """[ours] e.g. "SIGKILL" when the process was killed by a signal."""
    resource_usage: ResourceUsage | None = None
    """[ours]"""


class WriteParams(Params):
    process_id: ProcessId
    chunk: str
    write_id: WriteId
    close_stdin: bool = False
    """[ours] close the child's stdin after writing `chunk`."""


class WriteResult(Result):
    status: WriteStatus


class SignalParams(Params):
    process_id: ProcessId
    signal: SignalName


class TerminateParams(Params):
    process_id: ProcessId


class TerminateResult(Result):
    running: bool


class ProcessInfo(WireStruct):
    """[ours] One process of the session, as ``process/list`` reports it."""

    process_id: str
    argv: list[str]
    tty: bool
    running: bool
    """Whether its exit is not known yet."""
    exit_code: int | None
    closed: bool
    """Whether its last event (``process/closed``) was recorded; it stays listed while its
    output is retained."""


class ListResult(Result):
    """[ours] ``process/list``: every process the session still knows, in start order."""

    processes: list[ProcessInfo]


class ResizeParams(Params):
    """[ours]"""

    process_id: ProcessId
    rows: Annotated[int, msgspec.Meta(ge=1, le=0xFFFF)]
    cols: Annotated[int, msgspec.Meta(ge=1, le=0xFFFF)]


class ProcessOutputNotification(Params):
    process_id: ProcessId
    seq: Seq
    stream: StreamName
    chunk: str


class ProcessExitedNotification(Params):
    process_id: ProcessId
    seq: Seq
    exit_code: int
    sandbox_denied: bool
    signal: str | None = None
    """[ours]"""
    resource_usage: ResourceUsage | None = None
    """[ours]"""


class ProcessClosedNotification(Params):
    process_id: ProcessId
    seq: Seq
