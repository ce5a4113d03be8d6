"""The §8 denial heuristic, rule by rule (docs/protocol.md §8 "Denial heuristic")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from exec_server.sandbox import DENIAL_KEYWORDS, is_sandbox_denied

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"

CASES = [
    # (exit code, output, denied, why)
    (0, b"", False, "success is never a denial"),
    (0, b"Permission denied", False, "success with a keyword is still not a denial"),
    (1, b"", False, "a plain failure without a keyword is not a denial"),
    (1, b"sh: cannot create /x: Permission denied\n", True, "keyword"),
    (1, b"PERMISSION DENIED", True, "keywords match case-insensitively"),
    (1, b"touch: Read-only file system", True, "read-only file system"),
    (1, b"bash: socket: Operation not permitted", True, "operation not permitted"),
    (1, b"killed by seccomp", True, "seccomp"),
    (1, b"the sandbox said no", True, "sandbox"),
    (1, b"landlock: restricted", True, "landlock"),
    (1, b"error: failed to write file foo", True, "failed to write file"),
    (2, b"", False, "exit 2 is a usage error"),
    (126, b"", False, "exit 126 is not executable"),
    (127, b"sh: nosuch: not found", False, "exit 127 without a keyword is command-not-found"),
    (2, b"Permission denied", True, "a keyword wins over exit 2"),
    (126, b"sh: ./x: Permission denied", True, "a keyword wins over exit 126"),
    (127, b"Operation not permitted", True, "a keyword wins over exit 127"),
    (159, b"", True, "exit 159 (128+SIGSYS) is a seccomp kill"),
    (137, b"", False, "SIGKILL is not a denial"),
    (139, b"", False, "SIGSEGV is not a denial"),
    (125, b"File exists", False, "an unrelated error text is not a denial"),
]


@pytest.mark.parametrize(("exit_code", "output", "denied", "why"), CASES, ids=[c[3] for c in CASES])
def test_denial_heuristic_follows_protocol_rule(
    exit_code: int, output: bytes, denied: bool, why: str
) -> None:
    assert is_sandbox_denied(exit_code, output) is denied, why


def protocol_keywords() -> set[bytes]:
    """The keywords rule 2 of the denial heuristic in docs/protocol.md §8 lists."""
    text = " ".join(PROTOCOL.read_text().split())
    rule = re.search(r"2\. output containing, in any case, (.*?) is a denial", text)
    assert rule is not None, "docs/protocol.md §8 no longer states rule 2 this way"
    return {keyword.encode() for keyword in re.findall(r"`([^`]+)`", rule.group(1))}


def test_every_protocol_keyword_marks_a_failure_as_denied() -> None:
    expected = protocol_keywords()
    assert b"read-only file system" in expected  # the list was read, line break and all
    assert set(DENIAL_KEYWORDS) == expected
    for keyword in expected:
        assert is_sandbox_denied(1, b"xx " + keyword.upper() + b" yy")


def test_keyword_split_across_retained_output_still_counts_once_joined() -> None:
    output = b"".join([b"mkdir: cannot create: Permis", b"sion denied\n"])
    assert is_sandbox_denied(1, output)
