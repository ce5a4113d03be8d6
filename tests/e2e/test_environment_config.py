"""environmentConfig/read in the reference's shape (docs/protocol.md §11)."""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

import pytest
from exec_server.testing import RawClient, RawRpcError, ServerProcess


async def read(home: Path, config_paths: list[list[str]]) -> dict[str, object]:
    async with ServerProcess(env=dict(os.environ, CODEX_HOME=str(home))) as s:
        c = await RawClient.connect(s.url)
        await c.handshake()
        try:
            return await c.call(  # type: ignore[no-any-return]
                "environmentConfig/read",
                {"cwd": "file:///tmp", "configPaths": config_paths, "requirementsPaths": []},
            )
        finally:
            await c.aclose()


async def test_an_empty_codex_home_has_no_layers(tmp_path: Path) -> None:
    result = await read(tmp_path, [["mcp_servers"]])
    assert list(result) == ["userHomeDir", "codexHomeDir", "hostname", "config", "requirements"]
    assert result["codexHomeDir"] == tmp_path.as_uri()
    assert result["config"] == {"layers": [], "cloudInsertionIndex": 0}
    assert result["requirements"] == {"layers": [], "cloudInsertionIndex": 0}


async def test_the_user_layer_holds_only_the_requested_paths(tmp_path: Path) -> None:
    (tmp_path / "config.toml").write_text(
        'model = "gpt-5"\n[mcp_servers.x]\ncommand = "cat"\nargs = ["-u"]\n'
        '[mcp_servers.x.env]\nFOO = "bar"\n'
    )
    result = await read(tmp_path, [["mcp_servers"]])
    (layer,) = result["config"]["layers"]  # type: ignore[index]
    assert layer["source"] == f"user ({tmp_path / 'config.toml'})"
    assert layer["baseDir"] == tmp_path.as_uri()
    assert tomllib.loads(layer["toml"]) == {
        "mcp_servers": {"x": {"command": "cat", "args": ["-u"], "env": {"FOO": "bar"}}}
    }
    result = await read(tmp_path, [["model"], ["mcp_servers", "x", "command"]])
    (layer,) = result["config"]["layers"]  # type: ignore[index]
    assert tomllib.loads(layer["toml"]) == {
        "model": "gpt-5",
        "mcp_servers": {"x": {"command": "cat"}},
    }
    assert (await read(tmp_path, []))["config"]["layers"] == []  # type: ignore[index]


async def test_empty_key_paths_and_missing_fields_are_invalid_params(client: RawClient) -> None:
    with pytest.raises(RawRpcError) as err:
        await client.call(
            "environmentConfig/read",
            {"cwd": "file:///tmp", "configPaths": [[]], "requirementsPaths": []},
        )
    assert (err.value.code, err.value.message) == (
        -32602,
        "TOML paths must contain at least one key segment",
    )
    with pytest.raises(RawRpcError) as err:
        await client.call("environmentConfig/read", {"cwd": "file:///tmp", "requirementsPaths": []})
    assert err.value.code == -32602
