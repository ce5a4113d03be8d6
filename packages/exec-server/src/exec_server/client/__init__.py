"""The Python client of exec-server: processes on a remote executor, over a connection that
recovers from drops without losing or repeating a byte.

Quickstart::

    from exec_server.client import connect

    async with connect("ws://127.0.0.1:8765") as client:
        proc = await client.start(["sh", "-c", "echo hi"], cwd="/tmp")
        stdout, stderr = await proc.communicate()

Scripts without an event loop can use :class:`SyncClient` (see :mod:`exec_server.client.sync`).
"""

from ..exceptions import (
    ConnectionLost,
    ExecServerError,
    OutputLost,
    RemoteError,
    SandboxDenied,
    SessionLost,
    StdinClosed,
)
from . import sandbox
from ._approval import Approve, CompletedRun, run_with_approval
from ._backoff import Backoff
from ._client import Client, connect
from ._errors import CwdNotFound, ProgramNotFound, RemoteOSError
from ._events import Event, ExitEvent, OutputEvent
from ._process import Process, SandboxDeniedHandler
from ._run import TimeoutExpired
from ._shell import Shell, ShellExited
from ._state import ClientState
from ._stdio import connect_stdio
from ._streams import Expected, OutputStream
from .sync import SyncClient

__all__ = [
    "Approve",
    "Backoff",
    "Client",
    "ClientState",
    "CompletedRun",
    "ConnectionLost",
    "CwdNotFound",
    "Event",
    "ExecServerError",
    "ExitEvent",
    "Expected",
    "OutputEvent",
    "OutputLost",
    "OutputStream",
    "Process",
    "ProgramNotFound",
    "RemoteError",
    "RemoteOSError",
    "SandboxDenied",
    "SandboxDeniedHandler",
    "SessionLost",
    "Shell",
    "ShellExited",
    "StdinClosed",
    "SyncClient",
    "TimeoutExpired",
    "connect",
    "connect_stdio",
    "run_with_approval",
    "sandbox",
]
