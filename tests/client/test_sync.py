"""The synchronous facade end to end: plain (non-async) tests against a real server process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from exec_server.client import (
    ConnectionLost,
    CwdNotFound,
    ExitEvent,
    OutputEvent,
    ProgramNotFound,
    RemoteError,
    SessionLost,
    StdinClosed,
    SyncClient,
)
from exec_server.client.sync import SyncProcess

from tests.support import ENV


@pytest.fixture
def sync_url(tmp_path: Path) -> Iterator[str]:
    """A real server (``python -m exec_server``); its URL is the first line of its stdout.
    The test fails if the server logged a traceback or a warning."""
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "exec_server"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().decode().strip()
        assert url.startswith("ws://"), log_path.read_text(errors="replace")
        yield url
    finally:
        server.send_signal(signal.SIGINT)  # at once (SIGTERM would drain)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        assert server.stdout is not None
        server.stdout.close()
    text = log_path.read_text(errors="replace")
    assert "Traceback" not in text, text[-4000:]
    assert "Warning:" not in text, text[-4000:]


@pytest.fixture
def sc(sync_url: str) -> Iterator[SyncClient]:
    with SyncClient.connect(sync_url, call_timeout=30) as client:
        yield client


def read_to_end(proc: SyncProcess) -> list[OutputEvent | ExitEvent]:
    events: list[OutputEvent | ExitEvent] = []
    while (event := proc.read(timeout=10)) is not None:
        events.append(event)
    return events


def output_of(events: list[OutputEvent | ExitEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, OutputEvent))


def test_run_returns_the_exit_code_and_the_separated_output(sc: SyncClient) -> None:
    done = sc.run(["sh", "-c", "echo out; echo err >&2; exit 3"], cwd="/tmp", env=ENV, timeout=10)
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n")
    assert done.args == ["sh", "-c", "echo out; echo err >&2; exit 3"]


def test_run_with_check_raises_called_process_error_for_a_nonzero_exit(sc: SyncClient) -> None:
    with pytest.raises(subprocess.CalledProcessError) as info:
        sc.run(["sh", "-c", "echo out; exit 5"], cwd="/tmp", env=ENV, timeout=10, check=True)
    assert (info.value.returncode, info.value.stdout) == (5, b"out\n")
    assert sc.run(["true"], cwd="/tmp", env=ENV, timeout=10, check=True).returncode == 0


def test_run_writes_input_to_stdin_and_closes_it(sc: SyncClient) -> None:
    done = sc.run(["cat"], cwd="/tmp", env=ENV, input=b"hello\nworld\n", timeout=10)
    assert (done.returncode, done.stdout) == (0, b"hello\nworld\n")


def test_a_tty_run_reports_its_output_as_stdout(sc: SyncClient) -> None:
    done = sc.run(["sh", "-c", "test -t 1 && echo tty"], cwd="/tmp", env=ENV, tty=True, timeout=10)
    assert (done.returncode, done.stdout.strip(), done.stderr) == (0, b"tty", b"")


def test_a_run_past_its_timeout_kills_the_process_and_raises_timeout_error(
    sc: SyncClient, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    with pytest.raises(TimeoutError, match="tree was killed"):
        sc.run(
            ["sh", "-c", f"echo $$ > {pid_file}; exec sleep 60"],
            cwd="/tmp",
            env=ENV,
            timeout=3,
        )
    pid = int(pid_file.read_text())
    with pytest.raises(ProcessLookupError):  # killed and reaped before run() returned
        os.kill(pid, 0)
    assert sc.run(["true"], cwd="/tmp", env=ENV, timeout=10).returncode == 0


def test_a_bad_cwd_raises_cwd_not_found_and_the_client_stays_usable(sc: SyncClient) -> None:
    with pytest.raises(CwdNotFound) as info:
        sc.run(["true"], cwd="/no/such/dir", env=ENV, timeout=10)
    assert isinstance(info.value, RemoteError) and info.value.code == -32603
    assert info.value.filename == "/no/such/dir"
    with pytest.raises(ProgramNotFound):
        sc.start(["/no/such/program"], cwd="/tmp", env=ENV)
    assert sc.run(["echo", "ok"], cwd="/tmp", env=ENV, timeout=10).stdout == b"ok\n"


def test_a_started_process_is_written_read_and_waited_for(sc: SyncClient) -> None:
    proc = sc.start(["cat"], cwd="/tmp", env=ENV, pipe_stdin=True)
    proc.write(b"ping\n")
    echoed = b""
    while echoed != b"ping\n":
        event = proc.read(timeout=10)
        assert isinstance(event, OutputEvent) and event.stream == "stdout"
        echoed += event.data
    assert proc.returncode is None
    proc.close_stdin()
    assert proc.wait(timeout=10) == 0
    assert proc.returncode == 0
    events = read_to_end(proc)
    assert isinstance(events[-1], ExitEvent) and events[-1].exit_code == 0
    assert proc.read(timeout=10) is None  # stays at the end


def test_writing_to_a_process_without_a_stdin_pipe_raises_stdin_closed(sc: SyncClient) -> None:
    proc = sc.start(["sleep", "30"], cwd="/tmp", env=ENV)
    with pytest.raises(StdinClosed):
        proc.write(b"x")
    assert proc.kill() is True
    assert proc.wait(timeout=10) == 137


def test_a_wait_past_its_timeout_raises_timeout_error_and_the_process_keeps_running(
    sc: SyncClient,
) -> None:
    proc = sc.start(["sleep", "30"], cwd="/tmp", env=ENV)
    with pytest.raises(TimeoutError):
        proc.wait(timeout=0.2)
    with pytest.raises(TimeoutError):
        proc.read(timeout=0.2)
    assert proc.returncode is None
    proc.send_signal("interrupt")
    assert proc.wait(timeout=10) == 130
    proc = sc.start(["sleep", "30"], cwd="/tmp", env=ENV)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143


def test_a_tty_process_sees_its_resize(sc: SyncClient) -> None:
    proc = sc.start(
        ["sh", "-c", "read x; stty size"], cwd="/tmp", env=ENV, tty=True, pty_size=(24, 80)
    )
    proc.resize(33, 101)
    proc.write(b"\n")
    assert b"33 101" in output_of(read_to_end(proc))
    assert proc.returncode == 0


def sync_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("exec-server-sync-")}


def test_closing_the_client_stops_its_thread(sync_url: str) -> None:
    before = set(threading.enumerate())
    client = SyncClient.connect(sync_url)
    assert len(sync_threads() - before) == 1
    assert client.run(["true"], cwd="/tmp", env=ENV, timeout=10).returncode == 0
    client.close()
    assert set(threading.enumerate()) == before
    client.close()  # idempotent
    with pytest.raises(ConnectionLost, match="closed"):
        client.run(["true"], cwd="/tmp", env=ENV)
    with SyncClient.connect(sync_url) as client:
        assert len(sync_threads() - before) == 1
    assert set(threading.enumerate()) == before


def test_a_failed_connect_raises_connection_lost_and_leaves_no_thread(sync_url: str) -> None:
    before = set(threading.enumerate())
    with pytest.raises(SessionLost):
        SyncClient.connect(sync_url, resume_session_id="no-such-session")
    with pytest.raises(ConnectionLost):
        SyncClient.connect("ws://127.0.0.1:1", connect_timeout=5)
    assert set(threading.enumerate()) == before


def test_closing_the_client_wakes_a_wait_blocked_in_another_thread(sync_url: str) -> None:
    client = SyncClient.connect(sync_url)
    proc = client.start(["sleep", "30"], cwd="/tmp", env=ENV)
    outcome: list[BaseException] = []

    def wait_forever() -> None:
        try:
            proc.wait()
        except BaseException as exc:
            outcome.append(exc)

    waiter = threading.Thread(target=wait_forever)
    waiter.start()
    client.close()
    waiter.join(10)
    assert not waiter.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], ConnectionLost), outcome
