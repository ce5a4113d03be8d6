"""Intent -> a spawn plan: the spawn helper (``processes.spawn_helper``) builds the command's world
and execs it.

What the helper does, in this order (each step needs the one before), after entering the
command's cgroup leaf and setting its open-file limit (when the spawn asks for them):

1. ``no_new_privs`` — nothing exec'd can gain privileges (setuid bits, file capabilities).
2. ``unshare`` a user namespace (mapping only the server's own uid and gid; not needed, and
   skipped, when the server is root and the host refuses user namespaces), a mount namespace
   and a PID namespace.
3. The mounts (``_mounts``): the host read-only, writable roots writable again, protected paths
   read-only inside them.
4. Fork: the parent stays outside as the *outer waiter* (the process the server started; it
   ends with the command's own exit status or signal); the child is PID 1 of the new namespace.
5. PID 1 dies with the outer waiter (``PR_SET_PDEATHSIG``), mounts a ``/proc`` of the new
   namespace (processes outside are invisible there), and forks the command. As init it reaps
   orphans, and when the command exits it exits too: the kernel then kills everything the
   command left behind — tree kill without cgroups.
6. The command unblocks signals (the two waiters keep them blocked: the server signals the
   whole process group or cgroup, so the command gets each signal once, directly),
   ``landlock_restrict_self`` where the kernel has Landlock, drops every capability, installs
   the seccomp filter (``_seccomp``), closes every descriptor above stdio and execs.

A failing step makes the helper exit 125 with "sandbox setup failed" on stderr: the command never
runs unsandboxed.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass

from exec_server_protocol.process import SandboxType
from exec_server_protocol.sandbox import SandboxIntent

from .._linux import (
    MS_NODEV,
    MS_NOEXEC,
    MS_NOSUID,
    PR_CAP_AMBIENT,
    PR_CAP_AMBIENT_CLEAR_ALL,
    PR_SET_NO_NEW_PRIVS,
    PR_SET_PDEATHSIG,
)
from ..exceptions import SandboxUnavailable
from ..processes.env import resolve_executable
from ..processes.spawn import child_fd_limit
from ..processes.spawn_helper import SCRATCH, HelperFile, Script
from . import _kernel, _probe
from ._landlock import READ, build_ruleset, handles_reads
from ._mounts import PLACEHOLDERS, MountPlan, plan_mounts
from ._policy import Policy, compile_policy
from ._seccomp import build_filter

__all__ = ["SandboxPlan", "SandboxType", "prepare_spawn", "probe_namespaces"]


_SIG_BLOCK, _SIG_SETMASK = 0, 2
_MAP_SHARED_ANONYMOUS_FIXED = 0x01 | 0x20 | 0x10
_MS_NOSUID_NODEV_NOEXEC = MS_NOSUID | MS_NODEV | MS_NOEXEC
_O_PATH = 0o10000000
_LANDLOCK_RULE_PATH_BENEATH = 1


@dataclass(frozen=True, slots=True)
class SandboxPlan:
    """How to spawn one command.

    Attributes:
        argv: what to exec (``arg0`` already in place of ``argv[0]``).
        executable: for ``Popen(executable=...)``; ``None`` = ``argv[0]`` looked up on PATH.
        env: the child's environment.
        pass_fds: descriptors the child must keep.
        sandbox_type: the ``sandboxType`` of the start result.
        release: call exactly once when the process and its tree are gone, or when the spawn
            failed (removes placeholders, closes descriptors). ``None``: nothing to release.
        joins_leaf: the executable enters the cgroup leaf given to ``prepare_spawn`` itself.
        fd_limit: the open-file soft limit the spawn must still give the command (the
            ``fd_limit`` given to ``prepare_spawn``); None when the helper sets it.
    """

    argv: list[str]
    executable: str | None
    env: dict[str, str]
    pass_fds: tuple[int, ...]
    sandbox_type: SandboxType
    release: Callable[[], None] | None = None
    joins_leaf: bool = False
    fd_limit: int | None = None


def prepare_spawn(
    intent: SandboxIntent | None,
    *,
    argv: list[str],
    cwd: str,
    env: dict[str, str],
    arg0: str | None,
    leaf: str | None = None,
    fd_limit: int | None = None,
) -> SandboxPlan:
    """Plan the spawn of ``argv`` under ``intent`` (entering cgroup ``leaf`` first, if given;
    with the open-file soft limit ``fd_limit``, if given).

    Raises:
        InvalidArgument: a malformed intent.
        SandboxUnavailable: the host cannot enforce the intent (the message says what is
            missing); the command must not run. Not raised for a host that cannot sandbox at
            all when the operator configured external isolation: the plan is unsandboxed
            (``sandbox_type`` "none").
        OSError: the program cannot be found or run.
    """
    child_argv = [arg0, *argv[1:]] if arg0 is not None else list(argv)
    executable = argv[0] if arg0 is not None else None
    policy = compile_policy(intent, cwd=cwd, env=env)
    if policy is None:
        # Like the reference, any sandbox object (even one asking for nothing) reports
        # linuxSeccomp; only a missing one reports none.
        sandbox_type: SandboxType = "none" if intent is None else "linuxSeccomp"
        return SandboxPlan(child_argv, executable, env, (), sandbox_type, fd_limit=fd_limit)
    try:
        layers = _probe.layers_for(not policy.read_all)
    except SandboxUnavailable:
        if not _probe.external_isolation():
            raise
        # The operator isolates this executor from outside (--isolation external, logged as a
        # warning at start and reported by environment/info): the command runs under that only.
        return SandboxPlan(child_argv, executable, env, (), "none", fd_limit=fd_limit)
    target = resolve_executable(argv[0], cwd=cwd)
    setup = Setup(policy, layers)
    try:
        helper_fd = setup.write_helper(
            userns=layers.userns, own_proc=layers.own_proc, leaf=leaf, cwd=cwd, fd_limit=fd_limit
        )
    except BaseException:
        setup.release()
        raise
    return SandboxPlan(
        ["exec-server-sandbox", target, *child_argv],
        f"/proc/self/fd/{helper_fd}",
        env,
        setup.child_fds,
        "linuxSeccomp",
        setup.release,
        joins_leaf=leaf is not None,
    )


def _build_script(
    script: Script,
    *,
    userns: bool,
    own_proc: bool,
    mounts: MountPlan | None,
    cwd: str | None,
    ruleset_fd: int | None,
    landlock_proc: bool,
    bpf: bytes | None,
) -> None:
    """The helper's records (see the module docstring for the order and the reasons)."""
    s = script
    s.call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    flags = _kernel.CLONE_NEWNS | _kernel.CLONE_NEWPID
    if userns:
        uid, gid = os.geteuid(), os.getegid()
        s.call("unshare", flags | _kernel.CLONE_NEWUSER)
        s.write_file(b"/proc/self/setgroups", b"deny")
        s.write_file(b"/proc/self/uid_map", b"%d %d 1" % (uid, uid))
        s.write_file(b"/proc/self/gid_map", b"%d %d 1" % (gid, gid))
    else:
        s.call("unshare", flags)
    for source, target, mount_flags, tolerant in mounts.steps if mounts is not None else ():
        if tolerant:
            s.tolerate()
        s.call("mount", 0 if source is None else s.cstr(source), s.cstr(target), 0, mount_flags, 0)
    if cwd is not None:
        # The working directory was entered before the mounts: it is the host mount beneath a
        # writable root's bind mount, remounted read-only. Enter it again, through the binds.
        s.call("chdir", s.cstr(os.fsencode(cwd)))
    s.call("mmap", SCRATCH, 4096, 3, _MAP_SHARED_ANONYMOUS_FIXED, -1, 0)
    s.call("rt_sigprocmask", _SIG_BLOCK, s.ref(b"\xff" * 8), 0, 8)
    s.fork_outer()
    s.call("prctl", PR_SET_PDEATHSIG, 9, 0, 0, 0)
    if own_proc:
        proc = s.cstr(b"/proc")
        s.call("mount", s.cstr(b"proc"), proc, s.cstr(b"proc"), _MS_NOSUID_NODEV_NOEXEC, 0)
    s.fork_init()
    s.call("rt_sigprocmask", _SIG_SETMASK, s.ref(bytes(8)), 0, 8)
    if ruleset_fd is not None:
        if landlock_proc:
            # The new /proc is not the inode the parent granted reads on: grant it here.
            fd = s.next_fd
            s.call("openat", -100, s.cstr(b"/proc"), _O_PATH | os.O_CLOEXEC)
            attr = s.ref(struct.pack("=Qi", READ, fd))
            s.call("landlock_add_rule", ruleset_fd, _LANDLOCK_RULE_PATH_BENEATH, attr, 0)
            s.call("close", fd)
        s.call("landlock_restrict_self", ruleset_fd, 0)
    s.call("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    s.call("capset", s.ref(struct.pack("=Ii", 0x20080522, 0)), s.ref(bytes(24)))
    if bpf is not None:
        program = s.ref(bpf)
        s.call("seccomp", 1, 0, s.ref(struct.pack("=HxxxxxxQ", len(bpf) // 8, program)))
    s.call("close_range", 3, 0xFFFFFFFF, 0)


class Setup:
    """Everything one sandboxed spawn holds: the ruleset, the helper file, the placeholders."""

    __slots__ = ("_bpf", "_helper_fd", "_lock", "_mounts", "_policy", "_ruleset_fd")

    def __init__(self, policy: Policy, layers: _probe.Layers) -> None:
        self._lock = threading.Lock()
        self._policy = policy
        self._bpf = build_filter(network_restricted=policy.network_restricted)
        self._ruleset_fd: int | None = None
        self._helper_fd: int | None = None
        self._mounts: MountPlan | None = None
        try:
            self._ruleset_fd = build_ruleset(policy, layers.landlock_abi)
        except OSError as exc:
            raise SandboxUnavailable(
                f"sandbox unavailable: Landlock refused the rules: {exc}"
            ) from exc
        try:
            self._mounts = plan_mounts(policy)
        except BaseException:
            self.release()
            raise

    @property
    def child_fds(self) -> tuple[int, ...]:
        """Descriptors the helper needs in the child (it closes them before the final exec)."""
        return tuple(fd for fd in (self._ruleset_fd, self._helper_fd) if fd is not None)

    def write_helper(
        self,
        *,
        userns: bool,
        own_proc: bool,
        leaf: str | None,
        cwd: str | None = None,
        fd_limit: int | None = None,
    ) -> int:
        """Generate the helper for this plan; returns its (read-only) descriptor.

        Args:
            fd_limit: the command's open-file soft limit (None: the server's own).
        """
        helper = HelperFile()
        self._helper_fd = helper.fd
        script = Script(self.child_fds)
        if leaf is not None:
            script.join_cgroup(leaf)
        if fd_limit is not None:
            script.set_fd_limit(*child_fd_limit(fd_limit))
        _build_script(
            script,
            userns=userns,
            own_proc=own_proc,
            mounts=self._mounts,
            cwd=cwd if self._mounts is not None else None,
            ruleset_fd=self._ruleset_fd,
            landlock_proc=own_proc and handles_reads(self._policy, _probe.layers().landlock_abi),
            bpf=self._bpf,
        )
        helper.write(script)
        return helper.fd

    def release(self) -> None:
        with self._lock:
            fds = self.child_fds
            self._ruleset_fd = self._helper_fd = None
            mounts, self._mounts = self._mounts, None
        for fd in fds:
            os.close(fd)
        if mounts is not None:
            for placeholder in mounts.placeholders:
                PLACEHOLDERS.release(placeholder)


def probe_namespaces(*, userns: bool, own_proc: bool) -> str | None:
    """Run ``true`` in the namespaces the helper makes (no mounts, no filters).

    Returns:
        ``None`` when it worked, else what the helper printed (or why it could not start).
    """
    program = shutil.which("true") or "/bin/true"
    try:
        helper = HelperFile()
    except OSError as exc:  # no memfd, or no /proc/self/fd to reopen it (old gVisor)
        return f"the spawn helper cannot be made here: {exc}"
    try:
        script = Script((helper.fd,))
        _build_script(
            script,
            userns=userns,
            own_proc=own_proc,
            mounts=None,
            cwd=None,
            ruleset_fd=None,
            landlock_proc=False,
            bpf=None,
        )
        helper.write(script)
        result = subprocess.run(
            ["exec-server-sandbox", program, "true"],
            executable=f"/proc/self/fd/{helper.fd}",
            pass_fds=(helper.fd,),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return str(exc)
    finally:
        os.close(helper.fd)
    if result.returncode == 0:
        return None
    return result.stderr.decode(errors="replace").strip() or f"exit {result.returncode}"
