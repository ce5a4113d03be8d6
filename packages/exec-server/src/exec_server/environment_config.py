"""`environmentConfig/read` (docs/protocol.md §11): the executor host's Codex configuration.

Codex asks the executor for parts of *its* Codex config (e.g. ``[["mcp_servers"]]``) so that
servers configured on the executor can run there. We answer in the reference's shape: one
``user`` layer from ``$CODEX_HOME/config.toml`` (default ``~/.codex``) re-serialised with only
the requested key paths; requirements likewise from ``requirements.toml`` beside it. A project
``.codex/config.toml`` under ``cwd`` is not read (the reference does not either: the project is
untrusted).
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Any

import tomli_w
from exec_server_protocol import format_path_uri
from exec_server_protocol.session import (
    ConfigLayer,
    ConfigLayers,
    EnvironmentConfigReadParams,
    EnvironmentConfigReadResult,
)

from .exceptions import ConfigReadFailed, InvalidArgument

__all__ = ["codex_home", "read_environment_config"]


def codex_home() -> Path:
    env = os.environ.get("CODEX_HOME")
    return Path(env) if env else Path.home() / ".codex"


def _select(doc: dict[str, Any], paths: list[list[str]]) -> dict[str, Any]:
    """The sub-document holding only ``paths`` (each a list of keys into nested tables)."""
    out: dict[str, Any] = {}
    for path in paths:
        node: Any = doc
        for key in path:
            if not isinstance(node, dict) or key not in node:
                break
            node = node[key]
        else:
            target = out
            for key in path[:-1]:
                target = target.setdefault(key, {})
            target[path[-1]] = node
    return out


def _layer(file: Path, paths: list[list[str]], source: str) -> list[ConfigLayer]:
    if not paths:
        return []
    try:
        if not file.is_file():
            return []
        doc = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigReadFailed(str(file), exc) from exc
    selected = _select(doc, paths)
    return [
        ConfigLayer(
            source=f"{source} ({file})",
            base_dir=format_path_uri(str(file.parent)),
            toml=tomli_w.dumps(selected),
        )
    ]


def read_environment_config(p: EnvironmentConfigReadParams) -> EnvironmentConfigReadResult:
    for path in (*p.config_paths, *p.requirements_paths):
        if not path:
            raise InvalidArgument("TOML paths must contain at least one key segment")
    home = codex_home()
    return EnvironmentConfigReadResult(
        user_home_dir=format_path_uri(str(Path.home())),
        codex_home_dir=format_path_uri(str(home)),
        hostname=socket.gethostname(),
        config=ConfigLayers(layers=_layer(home / "config.toml", p.config_paths, "user")),
        requirements=ConfigLayers(
            layers=_layer(home / "requirements.toml", p.requirements_paths, "user")
        ),
    )
