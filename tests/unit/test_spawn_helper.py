"""The generated spawn helper's script records: a failing record ends the helper with 125,
unless `Script.tolerate()` let it fail with ENOENT or EINVAL (a host mount gone since the
plan was made)."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import subprocess
import threading

import pytest
from exec_server.processes import spawn_helper
from exec_server.sandbox import _mounts

pytestmark = pytest.mark.skipif(
    platform.machine() != spawn_helper.HELPER_ARCH, reason="the helper is x86-64 code"
)

MISSING = b"/nonexistent/exec-server-test"


def run_script(
    build: object, command: tuple[str, ...] = ("true",)
) -> subprocess.CompletedProcess[bytes]:
    helper = spawn_helper.HelperFile()
    try:
        script = spawn_helper.Script((helper.fd,))
        build(script)  # type: ignore[operator]
        script.call("close", helper.fd)
        helper.write(script)
        program = shutil.which(command[0]) or f"/bin/{command[0]}"
        return subprocess.run(
            ["helper", program, *command],
            executable=f"/proc/self/fd/{helper.fd}",
            pass_fds=(helper.fd,),
            capture_output=True,
            check=False,
        )
    finally:
        os.close(helper.fd)


def open_missing(s: spawn_helper.Script) -> None:
    s.call("openat", -100, s.cstr(MISSING), os.O_RDONLY)


def test_a_failing_record_ends_the_helper_before_the_command() -> None:
    result = run_script(open_missing)
    assert (result.returncode, result.stderr) == (125, b"exec-server: sandbox setup failed\n")


def test_a_tolerated_record_may_fail_with_enoent() -> None:
    def build(s: spawn_helper.Script) -> None:
        s.tolerate()
        open_missing(s)

    assert run_script(build).returncode == 0


def test_tolerance_covers_only_enoent_and_einval() -> None:
    def build(s: spawn_helper.Script) -> None:
        s.tolerate()
        s.call("openat", -100, s.cstr(b"/"), os.O_WRONLY)  # EISDIR

    assert run_script(build).returncode == 125


def test_tolerance_covers_only_the_next_record() -> None:
    def build(s: spawn_helper.Script) -> None:
        s.tolerate()
        s.call("write", 1, s.ref(b""), 0)  # succeeds
        open_missing(s)

    assert run_script(build).returncode == 125


def test_the_fd_limit_record_sets_the_limits_the_command_starts_with() -> None:
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    soft = 64 if hard == resource.RLIM_INFINITY else min(64, hard)
    result = run_script(
        lambda s: s.set_fd_limit(soft, hard), ("sh", "-c", "ulimit -Sn; ulimit -Hn")
    )
    shown_hard = "unlimited" if hard == resource.RLIM_INFINITY else str(hard)
    assert result.stdout.decode().split() == [str(soft), shown_hard]


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace of a thread needs root")
def test_mounts_applied_in_a_thread_skip_a_host_mount_that_went_away() -> None:
    plan = _mounts.MountPlan(
        (
            (None, b"/", _mounts.MS_REC | _mounts.MS_PRIVATE, False),
            (None, MISSING, _mounts.MS_REMOUNT | _mounts.MS_BIND | _mounts.MS_RDONLY, True),
        ),
        (),
    )
    strict = _mounts.MountPlan((plan.steps[0], (*plan.steps[1][:3], False)), ())
    outcomes: list[BaseException | None] = []

    def apply(p: _mounts.MountPlan) -> None:
        try:
            _mounts.apply_mounts(p)
            outcomes.append(None)
        except OSError as exc:
            outcomes.append(exc)

    for p in (plan, strict):
        thread = threading.Thread(target=apply, args=(p,))
        thread.start()
        thread.join()
    assert outcomes[0] is None
    assert isinstance(outcomes[1], FileNotFoundError)
