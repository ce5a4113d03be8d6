"""The client's conveniences against the reference, which sends no error ``data`` and has no
``process/list``: they fall back to what the client can find out by itself."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from exec_server.client import CwdNotFound, ProgramNotFound, connect
from exec_server.testing import ServerProcess


async def test_start_errors_files_and_processes_against_the_reference(
    reference: ServerProcess, tmp_path: Path
) -> None:
    async with asyncio.timeout(60), connect(reference.url) as client:
        with pytest.raises(ProgramNotFound) as no_program:
            await client.start(["no-such-program-xyz"], cwd=tmp_path)
        assert no_program.value.filename == "no-such-program-xyz"
        with pytest.raises(CwdNotFound) as no_cwd:
            await client.start(["true"], cwd=tmp_path / "gone")
        assert no_cwd.value.filename == str(tmp_path / "gone")
        with pytest.raises(FileNotFoundError) as no_file:
            await client.files.read_bytes(tmp_path / "missing")
        assert no_file.value.filename == str(tmp_path / "missing")
        await client.files.write_bytes(tmp_path / "f", b"data")
        assert await client.files.read_bytes(tmp_path / "f") == b"data"
        done = await client.run(["sh", "-c", "echo $HOME"], cwd=tmp_path)
        assert done.stdout.strip()
        proc = await client.start(["sleep", "30"], cwd=tmp_path)
        listed = await client.processes()
        assert [(p.process_id, p.argv, p.running) for p in listed] == [
            (proc.process_id, ["sleep", "30"], True)
        ]
        assert await proc.terminate() is True  # no SIGTERM over the reference's wire: SIGKILL
        assert await proc.wait() == 137
