"""A tiny stdio MCP server (newline-delimited JSON-RPC, stdlib only) for the Codex interop tests.

Codex runs it *on the executor* (``environment_id = "remote"``), so it is started by our
exec-server. Its one tool, ``read_marker``, reports the ``EXEC_SERVER_MARKER`` variable and the
working directory it sees, which proves where and how it was started.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

TOOL = {
    "name": "read_marker",
    "description": "Report the exec-server marker of the machine this MCP server runs on.",
    "inputSchema": {
        "type": "object",
        "properties": {"note": {"type": "string", "description": "echoed back"}},
        "additionalProperties": False,
    },
}


def answer(request: dict[str, Any]) -> dict[str, Any] | None:
    method = request.get("method")
    if "id" not in request:
        return None  # a notification (notifications/initialized, cancelled, ...)
    rid = request["id"]
    if method == "initialize":
        params = request.get("params") or {}
        return {
            "id": rid,
            "jsonrpc": "2.0",
            "result": {
                "protocolVersion": params.get("protocolVersion", "2025-06-18"),
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": "marker-server", "version": "1.0.0"},
            },
        }
    if method == "ping":
        return {"id": rid, "jsonrpc": "2.0", "result": {}}
    if method == "tools/list":
        return {"id": rid, "jsonrpc": "2.0", "result": {"tools": [TOOL]}}
    if method == "tools/call":
        params = request.get("params") or {}
        note = (params.get("arguments") or {}).get("note", "")
        text = (
            f"mcp marker={os.environ.get('EXEC_SERVER_MARKER', '<unset>')} "
            f"cwd={os.getcwd()} pid={os.getpid()} note={note}"
        )
        return {
            "id": rid,
            "jsonrpc": "2.0",
            "result": {"content": [{"type": "text", "text": text}], "isError": False},
        }
    return {
        "id": rid,
        "jsonrpc": "2.0",
        "error": {"code": -32601, "message": f"method not found: {method}"},
    }


def main() -> None:
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        reply = answer(json.loads(line))
        if reply is not None:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
