"""Intent (as Codex sends it, docs/protocol.md §8) -> the rules the sandbox enforces."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from exec_server.exceptions import ExecServerError, SandboxUnavailable
from exec_server.sandbox import prepare_spawn
from exec_server.sandbox._policy import compile_policy
from exec_server.wire_errors import wire_error
from exec_server_protocol import ParamsError
from sandbox_intents import decode, read_only, workspace_write


def compile_(raw: dict[str, Any], cwd: Path) -> Any:
    return compile_policy(decode(raw), cwd=str(cwd), env={})


def test_no_intent_and_disabled_permissions_need_no_enforcement(tmp_path: Path) -> None:
    assert compile_policy(None, cwd=str(tmp_path), env={}) is None
    assert (
        compile_({"permissions": {"type": "disabled"}, "windowsSandboxLevel": "disabled"}, tmp_path)
        is None
    )


def test_read_only_intent_restricts_every_write_and_the_network(tmp_path: Path) -> None:
    policy = compile_(read_only(), tmp_path)
    assert policy.read_all
    assert not policy.write_all
    assert policy.writable == ()
    assert policy.read_only == ()
    assert policy.network_restricted


def test_workspace_write_protects_the_four_names_in_each_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    policy = compile_(workspace_write(root), tmp_path)
    assert policy.writable == (str(root),)
    assert set(policy.read_only) == {str(root / n) for n in (".git", ".agents", ".codex", ".aws")}


def test_workspace_write_protects_the_names_without_subpath_entries(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    policy = compile_(workspace_write(root, subpaths=False), tmp_path)
    assert set(policy.read_only) == {str(root / n) for n in (".git", ".agents", ".codex", ".aws")}


def test_workspace_roots_default_to_the_sandbox_cwd_then_the_process_cwd(tmp_path: Path) -> None:
    raw = workspace_write(tmp_path)
    del raw["workspaceRoots"]
    assert compile_(raw, Path("/")).writable == (str(tmp_path),)
    del raw["cwd"]
    assert compile_(raw, tmp_path).writable == (str(tmp_path),)


def test_writable_root_given_through_a_symlink_is_resolved(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    policy = compile_(workspace_write(tmp_path / "link"), tmp_path)
    assert policy.writable == (str(tmp_path / "real"),)


def test_missing_grants_are_dropped_not_fatal(tmp_path: Path) -> None:
    policy = compile_(workspace_write(tmp_path / "missing"), tmp_path)
    assert policy.writable == ()


def test_tmp_kinds_grant_slash_tmp_and_the_child_tmpdir(tmp_path: Path) -> None:
    raw = read_only()
    raw["permissions"]["file_system"]["entries"] += [
        {"path": {"type": "special", "value": {"kind": "slash_tmp"}}, "access": "write"},
        {"path": {"type": "special", "value": {"kind": "tmpdir"}}, "access": "write"},
    ]
    policy = compile_policy(decode(raw), cwd=str(tmp_path), env={"TMPDIR": str(tmp_path)})
    assert set(policy.writable) == {os.path.realpath("/tmp"), str(tmp_path)}


def test_unrestricted_file_system_with_enabled_network_needs_no_enforcement(
    tmp_path: Path,
) -> None:
    raw = {
        "permissions": {
            "type": "managed",
            "network": "enabled",
            "file_system": {"type": "unrestricted"},
        },
        "windowsSandboxLevel": "disabled",
    }
    assert compile_(raw, tmp_path) is None
    raw["permissions"]["network"] = "restricted"
    policy = compile_(raw, tmp_path)
    assert policy.write_all
    assert policy.network_restricted


def test_external_permissions_restrict_only_the_network(tmp_path: Path) -> None:
    raw = {"permissions": {"type": "external", "network": "restricted"}, "windowsSandboxLevel": "x"}
    policy = compile_(raw, tmp_path)
    assert policy.write_all
    assert policy.network_restricted


@pytest.mark.parametrize(
    "path",
    [
        {"type": "path", "path": "relative"},
        {"type": "path", "path": "/native/path"},
        {"type": "path", "path": "http://x/y"},
        {"type": "glob_pattern", "pattern": "relative/*"},
        {"type": "special", "value": {"kind": "project_roots", "subpath": "../escape"}},
        {"type": "special", "value": {"kind": "project_roots", "subpath": "/abs"}},
    ],
)
def test_malformed_intent_paths_are_invalid_params(tmp_path: Path, path: dict[str, Any]) -> None:
    raw = read_only()
    raw["permissions"]["file_system"]["entries"].append({"path": path, "access": "write"})
    if path.get("type") == "path":
        # PathUris are checked while the params decode (the server answers -32602 then).
        with pytest.raises(ParamsError):
            decode(raw)
        return
    with pytest.raises(ExecServerError) as info:
        prepare_spawn(decode(raw), argv=["true"], cwd=str(tmp_path), env={}, arg0=None)
    answer = wire_error(info.value)
    assert answer is not None
    assert answer.code == -32602


@pytest.mark.parametrize(
    "raw",
    [
        {"permissions": {"type": "bogus"}, "windowsSandboxLevel": "disabled"},
        {"permissions": {"type": "managed", "network": "restricted"}, "windowsSandboxLevel": "x"},
        {"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
            {"path": {"type": "special", "value": {"kind": "weird"}}, "access": "read"}]}}},
        {"permissions": {"type": "managed", "file_system": {"type": "restricted", "entries": [
            {"path": {"type": "special", "value": {"kind": "root"}}, "access": "all"}]}}},
    ],
)  # fmt: skip
def test_malformed_intent_shapes_fail_to_decode(raw: dict[str, Any]) -> None:
    with pytest.raises(ParamsError):
        decode(raw)


def test_deny_inside_a_granted_area_is_refused_not_ignored(tmp_path: Path) -> None:
    raw = workspace_write(tmp_path)
    raw["permissions"]["file_system"]["entries"].append(
        {"path": {"type": "path", "path": f"file://{tmp_path}/secret"}, "access": "deny"}
    )
    with pytest.raises(SandboxUnavailable):
        prepare_spawn(decode(raw), argv=["true"], cwd=str(tmp_path), env={}, arg0=None)


def test_deny_outside_every_grant_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    raw = workspace_write(root)
    raw["permissions"]["file_system"]["entries"] = [
        e
        for e in raw["permissions"]["file_system"]["entries"]
        if e["path"]["value"]["kind"] != "root"
    ] + [{"path": {"type": "path", "path": f"file://{tmp_path}/other"}, "access": "deny"}]
    policy = compile_(raw, tmp_path)
    assert not policy.read_all
    assert policy.readable == (str(root),)


def test_unsandboxed_plan_runs_argv_as_is_with_arg0(tmp_path: Path) -> None:
    plan = prepare_spawn(None, argv=["sh", "-c", "x"], cwd=str(tmp_path), env={}, arg0="mysh")
    assert plan.argv == ["mysh", "-c", "x"]
    assert plan.executable == "sh"
    assert plan.sandbox_type == "none"


def test_sandboxed_plan_for_a_missing_program_raises_the_spawn_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        prepare_spawn(
            decode(read_only()), argv=["no-such-program-x"], cwd=str(tmp_path), env={}, arg0=None
        )


def test_a_sandbox_asking_for_nothing_still_reports_linux_seccomp(tmp_path: Path) -> None:
    raw = {"permissions": {"type": "disabled"}, "windowsSandboxLevel": "disabled"}
    plan = prepare_spawn(decode(raw), argv=["true"], cwd=str(tmp_path), env={}, arg0=None)
    assert plan.sandbox_type == "linuxSeccomp"
    assert plan.release is None
