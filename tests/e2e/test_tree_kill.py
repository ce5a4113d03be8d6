"""Whole-tree kill on terminate and shutdown, and no zombies (docs/protocol.md §6 [ours])."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
from exec_server.testing import RawClient, ServerProcess

from tests.support import TREE, start_params, wait_until


def written(path: Path) -> bool:
    return path.exists() and bool(path.read_text().strip())


async def wait_for_pids(d: Path) -> list[int]:
    files = [d / n for n in ("plain", "setsid", "daemon")]
    await wait_until(lambda: all(written(f) for f in files))
    return [int(f.read_text()) for f in files]


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def wait_gone(pids: list[int]) -> None:
    await wait_until(lambda: not any(alive(p) for p in pids))


def zombies_of(pid: int) -> list[int]:
    out = []
    for child in psutil.Process(pid).children():
        try:
            if child.status() == psutil.STATUS_ZOMBIE:
                out.append(child.pid)
        except psutil.NoSuchProcess:
            continue  # reaped between the listing and the look
    return out


async def test_terminate_kills_setsid_and_double_forked_descendants(
    server: ServerProcess, client: RawClient, tmp_path: Path
) -> None:
    await client.call("process/start", start_params("tree", ["sh", "-c", TREE.format(d=tmp_path)]))
    pids = await wait_for_pids(tmp_path)
    assert all(alive(p) for p in pids)
    assert await client.call("process/terminate", {"processId": "tree"}) == {"running": True}
    await wait_gone(pids)
    await client.collect("tree")
    await wait_until(lambda: not zombies_of(server.pid))


async def test_terminate_after_exit_still_kills_background_children(
    client: RawClient, tmp_path: Path
) -> None:
    script = f"setsid sh -c 'echo $$ > {tmp_path}/setsid; exec sleep 300' >/dev/null 2>&1 &"
    await client.call("process/start", start_params("bg", ["sh", "-c", script]))
    await client.collect("bg")
    await wait_until(lambda: written(tmp_path / "setsid"))
    orphan = int((tmp_path / "setsid").read_text())
    assert alive(orphan)
    assert await client.call("process/terminate", {"processId": "bg"}) == {"running": False}
    await wait_gone([orphan])


async def test_server_shutdown_kills_every_process_it_started(tmp_path: Path) -> None:
    s = ServerProcess("--drain-timeout", "0")  # SIGTERM without a drain: the old shutdown
    await s.start()
    c = await RawClient.connect(s.url)
    await c.handshake()
    await c.call("process/start", start_params("tree", ["sh", "-c", TREE.format(d=tmp_path)]))
    pids = await wait_for_pids(tmp_path)
    assert await s.stop(signal.SIGTERM) == 0
    await wait_gone(pids)
    assert b"Traceback" not in s.stderr


async def test_sigint_shuts_down_cleanly_too(tmp_path: Path) -> None:
    s = ServerProcess()
    await s.start()
    c = await RawClient.connect(s.url)
    await c.handshake()
    await c.call(
        "process/start",
        start_params("s", ["sh", "-c", f"echo $$ > {tmp_path}/plain; exec sleep 300"]),
    )
    await wait_until(lambda: written(tmp_path / "plain"))
    pid = int((tmp_path / "plain").read_text())
    assert await s.stop(signal.SIGINT) == 0
    await wait_gone([pid])


async def test_many_short_processes_leave_no_zombies_or_fds(
    server: ServerProcess, client: RawClient
) -> None:
    proc = psutil.Process(server.pid)
    await client.call("process/start", start_params("warm", ["true"]))
    await client.collect("warm")
    fds_before = proc.num_fds()
    for i in range(100):
        await client.call(
            "process/start", start_params(f"p{i}", ["sh", "-c", "true & true"], tty=i % 2 == 0)
        )
    for i in range(100):
        await client.collect(f"p{i}")
    await wait_until(lambda: not zombies_of(server.pid))
    # Closed processes release their pipes/ptys and pidfds (a leak never returns to baseline).
    await wait_until(lambda: proc.num_fds() <= fds_before + 2)


async def test_the_server_survives_when_a_child_closes_its_outputs_early(client: RawClient) -> None:
    await client.call(
        "process/start", start_params("c", ["sh", "-c", "exec >&- 2>&-; sleep 0.2; exit 4"])
    )
    result = await client.collect("c")
    assert result["exit"]["exitCode"] == 4
    assert os.getpid() > 0


async def test_server_shutdown_with_a_live_tty_process_is_clean(tmp_path: Path) -> None:
    s = ServerProcess("--drain-timeout", "0")
    await s.start()
    c = await RawClient.connect(s.url)
    await c.handshake()
    await c.call("process/start", start_params("tty", ["sleep", "300"], tty=True))
    await c.call("process/start", start_params("cat", ["cat"], pipeStdin=True))
    assert await s.stop(signal.SIGTERM) == 0
    assert b"Traceback" not in s.stderr, s.stderr.decode(errors="replace")


async def test_shutdown_escalates_hup_for_ttys_then_term_then_kill(tmp_path: Path) -> None:
    s = ServerProcess("--stop-grace", "0.3", "--drain-timeout", "0")
    await s.start()
    c = await RawClient.connect(s.url)
    await c.handshake()
    loop = "while :; do sleep 0.05; done"
    polite = f"trap 'echo term > {tmp_path}/polite; exit 0' TERM; echo $$ > {tmp_path}/p1; {loop}"
    stubborn = f"trap '' TERM; echo $$ > {tmp_path}/p2; {loop}"
    tty = f"trap 'echo hup > {tmp_path}/tty; exit 0' HUP; echo $$ > {tmp_path}/p3; {loop}"
    await c.call("process/start", start_params("polite", ["sh", "-c", polite]))
    await c.call("process/start", start_params("stubborn", ["sh", "-c", stubborn]))
    await c.call("process/start", start_params("tty", ["sh", "-c", tty], tty=True))
    await wait_until(lambda: all(written(tmp_path / f"p{i}") for i in (1, 2, 3)))
    pids = [int((tmp_path / f"p{i}").read_text()) for i in (1, 2, 3)]
    assert await s.stop(signal.SIGTERM) == 0
    await wait_gone(pids)
    assert (tmp_path / "polite").read_text() == "term\n"
    assert (tmp_path / "tty").read_text() == "hup\n"
    assert b"Traceback" not in s.stderr


async def test_terminate_right_after_start_kills_a_child_not_yet_in_its_cgroup(
    client: RawClient,
) -> None:
    # The child enters its cgroup leaf itself, just after the spawn: a terminate that comes
    # first must still reach it (100 tries make the window likely to be hit at least once).
    for i in range(100):
        await client.call("process/start", start_params(f"quick{i}", ["sleep", "30"]))
        await client.call("process/terminate", {"processId": f"quick{i}"})
    for i in range(100):
        exited = (await client.collect(f"quick{i}", timeout=10))["exit"]
        assert exited["signal"] == "SIGKILL"
