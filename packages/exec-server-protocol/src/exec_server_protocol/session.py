"""`initialize`, `environment/info` and `environmentConfig/read` (docs/protocol.md §2, §3, §11)."""

from __future__ import annotations

import msgspec
from msgspec import UNSET, UnsetType

from ._base import Params, Result, WireStruct
from .ids import SessionId
from .path_uri import PathUri

__all__ = [
    "ConfigLayer",
    "ConfigLayers",
    "EnvironmentConfigReadParams",
    "EnvironmentConfigReadResult",
    "EnvironmentInfo",
    "InitializeParams",
    "InitializeResult",
    "ShellInfo",
]


class InitializeParams(Params):
    client_name: str
    resume_session_id: SessionId | None = None


class ShellInfo(WireStruct):
    name: str
    path: str


class EnvironmentInfo(Result):
    shell: ShellInfo
    executor_version: str
    provider_id: str
    cwd: str
    user_home_dir: str
    platform_os: str
    prepend_path_dirs: list[str]
    temporary_directories: list[str]
    temp_dir: str
    capabilities: dict[str, bool]
    isolation: str | UnsetType = UNSET
    """[ours] ``"external"`` when the operator isolates the executor from outside
    (``--isolation external``): sandboxed intents this host cannot enforce run under that
    isolation only. Absent otherwise."""


class InitializeResult(Result):
    session_id: SessionId
    environment_info: EnvironmentInfo


class EnvironmentConfigReadParams(Params, kw_only=True):
    cwd: PathUri | None = None
    config_paths: list[list[str]]
    requirements_paths: list[list[str]]


class ConfigLayer(WireStruct):
    source: str
    """Where the layer came from, e.g. ``user (/root/.codex/config.toml)``."""
    base_dir: str
    """PathUri of the directory relative paths in the layer resolve against."""
    toml: str
    """TOML text holding only the requested paths."""


class ConfigLayers(WireStruct):
    layers: list[ConfigLayer] = msgspec.field(default_factory=list)
    cloud_insertion_index: int = 0


class EnvironmentConfigReadResult(Result):
    user_home_dir: str
    codex_home_dir: str
    hostname: str
    config: ConfigLayers
    requirements: ConfigLayers
