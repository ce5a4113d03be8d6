"""`initialize`, `environment/info` and `environmentConfig/read` (PROTOCOL.md §2, §3, §11)."""

from __future__ import annotations

from typing import Any

import msgspec

from ._base import Params, Result, WireStruct

__all__ = [
    "EnvironmentConfigReadParams",
    "EnvironmentConfigReadResult",
    "EnvironmentInfo",
    "InitializeParams",
    "InitializeResult",
    "ShellInfo",
]


class InitializeParams(Params):
    client_name: str
    resume_session_id: str | None = None


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


class InitializeResult(Result):
    session_id: str
    environment_info: EnvironmentInfo


class EnvironmentConfigReadParams(Params):
    cwd: str | None = None
    config_paths: list[list[str]] = msgspec.field(default_factory=list)
    requirements_paths: list[list[str]] = msgspec.field(default_factory=list)


class ConfigLayers(WireStruct):
    cloud_insertion_index: int | None = None
    layers: list[Any] = msgspec.field(default_factory=list)


class EnvironmentConfigReadResult(Result):
    codex_home_dir: str
    config: ConfigLayers
    hostname: str
    requirements: ConfigLayers
    user_home_dir: str
