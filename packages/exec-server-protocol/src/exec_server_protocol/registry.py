"""The method registry: ``method -> (Params, Result)``, and the JSON Schema export.

Every request method and notification of the protocol is listed here exactly once. The
server dispatches on it; the client encodes with it; :func:`json_schema` exports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

import msgspec

from . import fs, process, session
from ._base import EmptyParams, EmptyResult
from .path_uri import PathUri

__all__ = ["METHODS", "NOTIFICATIONS", "MethodSpec", "json_schema"]


@dataclass(frozen=True, slots=True)
class MethodSpec:
    """One request method."""

    name: str
    params: type[Any]
    result: type[Any]
    family: str
    """Handshake family, as named in the handshake errors: "initialize", "exec", "filesystem",
    "environment info" or "environment config"."""
    ours: bool = False
    """[ours] an extension a stock Codex client never sends."""


_M = MethodSpec

METHODS: Final[dict[str, MethodSpec]] = {
    m.name: m
    for m in (
        _M("initialize", session.InitializeParams, session.InitializeResult, "initialize"),
        _M("environment/info", EmptyParams, session.EnvironmentInfo, "environment info"),
        _M(
            "environmentConfig/read",
            session.EnvironmentConfigReadParams,
            session.EnvironmentConfigReadResult,
            "environment config",
        ),
        _M("process/start", process.StartParams, process.StartResult, "exec"),
        _M("process/read", process.ReadParams, process.ReadResult, "exec"),
        _M("process/write", process.WriteParams, process.WriteResult, "exec"),
        _M("process/signal", process.SignalParams, EmptyResult, "exec"),
        _M("process/terminate", process.TerminateParams, process.TerminateResult, "exec"),
        _M("process/resize", process.ResizeParams, EmptyResult, "exec", ours=True),
        _M("process/list", EmptyParams, process.ListResult, "exec", ours=True),
        _M("fs/readFile", fs.ReadFileParams, fs.ReadFileResult, "filesystem"),
        _M("fs/writeFile", fs.WriteFileParams, EmptyResult, "filesystem"),
        _M("fs/createDirectory", fs.CreateDirectoryParams, EmptyResult, "filesystem"),
        _M("fs/getMetadata", fs.GetMetadataParams, fs.Metadata, "filesystem"),
        _M("fs/readDirectory", fs.ReadDirectoryParams, fs.ReadDirectoryResult, "filesystem"),
        _M("fs/remove", fs.RemoveParams, EmptyResult, "filesystem"),
        _M("fs/copy", fs.CopyParams, EmptyResult, "filesystem"),
        _M("fs/canonicalize", fs.CanonicalizeParams, fs.CanonicalizeResult, "filesystem"),
        _M("fs/walk", fs.WalkParams, fs.WalkResult, "filesystem"),
        _M("fs/open", fs.OpenParams, fs.OpenResult, "filesystem"),
        _M("fs/readBlock", fs.ReadBlockParams, fs.ReadBlockResult, "filesystem"),
        _M("fs/writeBlock", fs.WriteBlockParams, fs.WriteBlockResult, "filesystem"),
        _M("fs/close", fs.CloseParams, EmptyResult, "filesystem"),
        _M("fs/watchMissing", fs.WatchMissingParams, fs.WatchMissingResult, "filesystem"),
    )
}

NOTIFICATIONS: Final[dict[str, type[Any]]] = {
    "initialized": EmptyParams,
    "process/output": process.ProcessOutputNotification,
    "process/exited": process.ProcessExitedNotification,
    "process/closed": process.ProcessClosedNotification,
    "fs/missingChanged": fs.MissingChangedNotification,
}


def _schema_hook(tp: type[Any]) -> dict[str, Any]:
    if tp is PathUri:
        return dict(PathUri.JSON_SCHEMA)
    raise NotImplementedError(f"no JSON schema for {tp!r}")


def json_schema() -> dict[str, Any]:
    """A JSON Schema document describing every method's params and result and every
    notification's params, with shared definitions under ``$defs``."""
    names: list[str] = []
    types: list[Any] = []
    for spec in METHODS.values():
        names += [f"{spec.name}#params", f"{spec.name}#result"]
        types += [spec.params, spec.result]
    for name, params in NOTIFICATIONS.items():
        names.append(f"{name}#params")
        types.append(params)
    refs, defs = msgspec.json.schema_components(
        types, ref_template="#/$defs/{name}", schema_hook=_schema_hook
    )
    methods: dict[str, Any] = {}
    for spec in METHODS.values():
        methods[spec.name] = {
            "params": refs[names.index(f"{spec.name}#params")],
            "result": refs[names.index(f"{spec.name}#result")],
            "family": spec.family,
            "ours": spec.ours,
        }
    notifications = {
        name: {"params": refs[names.index(f"{name}#params")]} for name in NOTIFICATIONS
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "exec-server protocol",
        "methods": methods,
        "notifications": notifications,
        "$defs": dict(sorted(defs.items())),
    }
