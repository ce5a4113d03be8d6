"""The semantic denial heuristic of docs/protocol.md §8.

Decided once, when the exit of a *sandboxed* process is recorded, over its retained output. The
caller only asks for sandboxed processes; unsandboxed processes always report ``False``.
"""

from __future__ import annotations

__all__ = ["DENIAL_KEYWORDS", "is_sandbox_denied"]

DENIAL_KEYWORDS: tuple[bytes, ...] = (
    b"operation not permitted",
    b"permission denied",
    b"read-only file system",
    b"seccomp",
    b"sandbox",
    b"landlock",
    b"failed to write file",
)
"""Lower-case keywords; any of them in the output marks a failure as a denial."""

_NOT_DENIED_EXIT_CODES = frozenset({2, 126, 127})
"""Usage errors and command-not-found/not-executable: not denials unless a keyword says so."""

_SIGSYS_EXIT_CODE = 128 + 31
"""A seccomp kill (SIGSYS) is a denial even with no output."""


def is_sandbox_denied(exit_code: int, output: bytes) -> bool:
    """Whether a sandboxed process probably failed because the sandbox blocked it.

    Args:
        exit_code: the recorded exit code (128+N when killed by signal N).
        output: the process's retained output, all streams.

    Returns:
        ``False`` for exit code 0; ``True`` when the output contains a denial keyword
        (case-insensitively), whatever the exit code; otherwise ``True`` only for 159 (SIGSYS).
    """
    if exit_code == 0:
        return False
    lowered = output.lower()
    if any(keyword in lowered for keyword in DENIAL_KEYWORDS):
        return True
    if exit_code in _NOT_DENIED_EXIT_CODES:
        return False
    return exit_code == _SIGSYS_EXIT_CODE
