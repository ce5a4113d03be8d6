"""Run a command sandboxed; when the sandbox probably blocked it, ask, and retry without it.

This is the approval flow of an agent orchestrator (issue 4): the executor only reports
``sandboxDenied``; whether to rerun the command unsandboxed is the user's decision, which the
caller supplies as an ``approve`` callback.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from exec_server_protocol.sandbox import SandboxIntent

from ..exceptions import SandboxDenied
from . import _run

if TYPE_CHECKING:
    from ._client import Client
    from ._process import Process

__all__ = ["Approve", "CompletedRun", "run_with_approval"]

Approve = Callable[[SandboxDenied], Awaitable[bool]]
"""Asked once per denial: ``True`` reruns the command without the sandbox."""


@dataclass(frozen=True, slots=True)
class CompletedRun:
    """The final run of :func:`run_with_approval`.

    Attributes:
        returncode: its exit code (128+N when killed by signal N).
        stdout: its stdout (a tty's output counts as stdout).
        stderr: its stderr.
        sandboxed: whether it ran under the sandbox (``False`` after an approved retry).
        denial: the denial that was approved, when the command was retried.
    """

    returncode: int
    stdout: bytes
    stderr: bytes
    sandboxed: bool
    denial: SandboxDenied | None = None


async def run_with_approval(
    client: Client,
    argv: list[str],
    *,
    sandbox: SandboxIntent,
    approve: Approve,
    input: bytes | None = None,
    **start_kwargs: Any,
) -> CompletedRun:
    """Run ``argv`` under ``sandbox``; on a denial, ask ``approve`` and maybe rerun unsandboxed.

    The command runs to its end (every output event, ``process/closed``). A failure that the
    server did not report as ``sandboxDenied`` (docs/protocol.md §8) is returned as it is, without
    asking. The client's ``sandbox_denied_handler`` is not consulted.

    Args:
        client: a connected client.
        argv: the command.
        sandbox: the intent of the first run.
        approve: asked with the :class:`SandboxDenied` (exit code and output tail) of a denied
            run; ``True`` reruns the command with ``sandbox=None``.
        input: written to stdin (then closed) on each run; needs ``pipe_stdin=True`` or a tty.
        **start_kwargs: passed on to :meth:`Client.start` (``cwd`` is required). A given
            ``process_id`` is used for the first run; the retry gets ``<process_id>-retry``.

    Returns:
        The final run.

    Raises:
        SandboxDenied: the sandboxed run was denied and ``approve`` said no.
        RemoteError, ConnectionLost, SessionLost: as :meth:`Client.start` and
            :meth:`Process.wait` raise them.
    """
    first = await client.start(argv, sandbox=sandbox, **start_kwargs)
    code, stdout, stderr, tail = await _run_to_end(first, input)
    assert first.exit is not None
    if not first.exit.sandbox_denied:
        return CompletedRun(code, stdout, stderr, sandboxed=True)
    denial = SandboxDenied(code, tail)
    if not await approve(denial):
        raise denial
    retry_kwargs = dict(start_kwargs)
    if retry_kwargs.get("process_id") is not None:
        retry_kwargs["process_id"] = f"{retry_kwargs['process_id']}-retry"
    second = await client.start(argv, sandbox=None, **retry_kwargs)
    code, stdout, stderr, _ = await _run_to_end(second, input)
    return CompletedRun(code, stdout, stderr, sandboxed=False, denial=denial)


async def _run_to_end(proc: Process[Any], input: bytes | None) -> tuple[int, bytes, bytes, bytes]:
    """Feed ``input``, read every event; returns (exit code, stdout, stderr, output tail)."""
    got = _run.Collected()
    await _run.collect(proc, input, got)
    code = await proc.wait(check_sandbox=False)
    return code, bytes(got.out), bytes(got.err), proc._feed.tail()
