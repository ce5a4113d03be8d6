"""The generated spawn helper's script records: a failing record ends the helper with 125,
unless `Script.tolerate()` let it fail with ENOENT or EINVAL (a host mount gone since the
plan was made)."""

from __future__ import annotations

import os
import platform
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


def run_script(build: object) -> subprocess.CompletedProcess[bytes]:
    helper = spawn_helper.HelperFile()
    try:
        script = spawn_helper.Script((helper.fd,))
        build(script)  # type: ignore[operator]
        script.call("close", helper.fd)
        helper.write(script)
        true = shutil.which("true") or "/bin/true"
        return subprocess.run(
            ["helper", true, "true"],
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
