"""The systemd units in deploy/systemd: systemd accepts them, and they keep what docs/deploy.md
promises (own user, token as a credential, a delegated cgroup, drain-friendly stop, hardening).

``systemd-analyze verify`` needs no running systemd. It comes with Debian's ``systemd``
package, which a full Debian 12 installation has but a minimal rootfs (debootstrap
--variant=minbase, container base images) does not; scripts/setup does not install it, so
without it the two verify tests skip and say so. The content tests need nothing.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SYSTEMD = ROOT / "deploy" / "systemd"
SYSTEM_UNIT = SYSTEMD / "exec-server.service"
USER_UNIT = SYSTEMD / "exec-server-user.service"
# Where each unit expects the installed server; verify checks that ExecStart is executable.
SERVER_PATH = {
    SYSTEM_UNIT: "/opt/exec-server/bin/exec-server",
    USER_UNIT: "%h/.local/share/exec-server/bin/exec-server",
}
DRAIN_TIMEOUT = 30  # the default of --drain-timeout

SYSTEM_HARDENING = {
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "AmbientCapabilities": "",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes",
    "ProtectKernelLogs": "yes",
    "ProtectClock": "yes",
    "ProtectHostname": "yes",
    "ProtectProc": "invisible",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "LockPersonality": "yes",
    "RemoveIPC": "yes",
    "SystemCallArchitectures": "native",
}
USER_HARDENING = {
    "NoNewPrivileges": "yes",
    "RestrictSUIDSGID": "yes",
    "RestrictRealtime": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
}
# Each would break the executor; each is named, with its reason, in a comment of the unit.
LEFT_OUT = [
    "RestrictNamespaces",
    "PrivateUsers",
    "ProtectControlGroups",
    "MemoryDenyWriteExecute",
    "PrivateNetwork",
    "IPAddressDeny",
]


def parse_unit(text: str) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> values (in order), with continuation lines joined, comments dropped."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    logical = re.sub(r"\\\n\s*", " ", text)
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("[") and line.endswith("]"):
            current = sections.setdefault(line[1:-1], {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not a key=value line: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(unit: Path) -> dict[str, list[str]]:
    return parse_unit(unit.read_text())["Service"]


def single(unit: Path, key: str) -> str:
    values = service(unit)[key]
    assert len(values) == 1, f"{unit.name}: {key} set {len(values)} times"
    return values[0]


def comments(unit: Path) -> str:
    return "\n".join(
        line for line in unit.read_text().splitlines() if line.lstrip().startswith("#")
    )


def systemd_analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        pytest.skip(
            "systemd-analyze not found (Debian package `systemd`, absent from minimal rootfs "
            "images; scripts/setup does not install it): the units were not verified"
        )
    return found


def verify(unit_text: str, *, user: bool, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze [--user] verify`` on ``unit_text``, named exec-server.service."""
    unit = tmp_path / "exec-server.service"
    unit.write_text(unit_text)
    runtime_dir = tmp_path / "runtime"  # the user manager wants one; nothing is started
    runtime_dir.mkdir(mode=0o700)
    command = [systemd_analyze(), *(["--user"] if user else []), "verify", str(unit)]
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"PATH": "/usr/bin:/bin", "XDG_RUNTIME_DIR": str(runtime_dir), "HOME": str(tmp_path)},
    )


def with_stub_server(unit: Path, tmp_path: Path) -> str:
    """The unit's text with ExecStart pointing at an executable stub, so verify can check the
    rest: it refuses an ExecStart binary that does not exist on this machine."""
    stub = tmp_path / "bin" / "exec-server"
    stub.parent.mkdir()
    stub.write_text("#!/bin/sh\n")
    stub.chmod(0o755)
    text = unit.read_text()
    assert text.count(SERVER_PATH[unit]) == 1
    return text.replace(SERVER_PATH[unit], str(stub))


@pytest.mark.parametrize(("unit", "user"), [(SYSTEM_UNIT, False), (USER_UNIT, True)])
def test_systemd_analyze_verify_accepts_the_unit_without_a_warning(
    unit: Path, user: bool, tmp_path: Path
) -> None:
    done = verify(with_stub_server(unit, tmp_path), user=user, tmp_path=tmp_path)
    # An unknown or misspelled key is only a warning (exit 0): any output fails the test.
    assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), done.stderr


def test_systemd_analyze_verify_reports_a_misspelled_option(tmp_path: Path) -> None:
    text = with_stub_server(SYSTEM_UNIT, tmp_path).replace("ProtectSystem=", "ProtectSytem=")
    done = verify(text, user=False, tmp_path=tmp_path)
    assert "Unknown key 'ProtectSytem'" in done.stderr


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT])
def test_the_server_requires_the_token_it_gets_as_a_credential(unit: Path) -> None:
    argv = single(unit, "ExecStart").split()
    assert argv[argv.index("--ws-auth") + 1] == "capability-token"
    assert argv[argv.index("--ws-token-file") + 1] == "%d/token"
    assert single(unit, "LoadCredential").startswith("token:")
    assert "Environment" not in service(unit) or "TOKEN" not in " ".join(
        service(unit)["Environment"]
    )


def test_the_system_unit_listens_on_all_addresses_and_the_user_unit_on_loopback() -> None:
    system_argv = single(SYSTEM_UNIT, "ExecStart").split()
    user_argv = single(USER_UNIT, "ExecStart").split()
    assert system_argv[system_argv.index("--listen") + 1] == "ws://0.0.0.0:8765"
    assert user_argv[user_argv.index("--listen") + 1] == "ws://127.0.0.1:8765"


def test_the_system_unit_runs_as_a_user_of_its_own() -> None:
    settings = service(SYSTEM_UNIT)
    assert settings.get("DynamicUser") == ["yes"] or "User" in settings
    assert settings.get("User", ["x"]) != ["root"]


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT])
def test_the_server_gets_its_own_cgroup_subtree(unit: Path) -> None:
    assert single(unit, "Delegate") == "yes"


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT])
def test_stop_signals_the_server_alone_and_outwaits_the_drain(unit: Path) -> None:
    assert single(unit, "KillMode") == "mixed"
    stop = int(single(unit, "TimeoutStopSec"))
    assert DRAIN_TIMEOUT < stop <= DRAIN_TIMEOUT + 30


@pytest.mark.parametrize(
    ("unit", "hardening"), [(SYSTEM_UNIT, SYSTEM_HARDENING), (USER_UNIT, USER_HARDENING)]
)
def test_the_unit_sets_each_hardening_option_that_keeps_an_executor_working(
    unit: Path, hardening: dict[str, str]
) -> None:
    settings = {key: single(unit, key) for key in hardening}
    assert settings == hardening
    families = single(unit, "RestrictAddressFamilies").split()
    assert set(families) == {"AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK"}
    assert single(unit, "SystemCallFilter").startswith("~")


@pytest.mark.parametrize("unit", [SYSTEM_UNIT, USER_UNIT])
def test_options_that_would_break_the_executor_are_left_out_and_explained(unit: Path) -> None:
    settings = service(unit)
    for option in LEFT_OUT:
        assert option not in settings, option
    explained = comments(SYSTEM_UNIT)
    for option in LEFT_OUT:
        assert f"{option}=" in explained, option
