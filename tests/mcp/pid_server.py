"""A small MCP server built with the ``mcp`` SDK (stdio), for the tests of ``exec_server.mcp``.

Its tool ``double`` answers with its argument doubled, the server's pid, and how many times the
tool has run: a repeated request would show as a count that runs ahead of the caller's.
"""

from __future__ import annotations

import json
import os
import sys

from mcp.server.mcpserver import MCPServer as Server

app = Server("pid-server")
calls = 0


@app.tool()
def double(n: int) -> str:
    """n doubled, with the pid of this server and the number of calls so far."""
    global calls
    calls += 1
    return json.dumps({"n": n, "double": 2 * n, "pid": os.getpid(), "calls": calls})


@app.tool()
def complain(text: str) -> str:
    """Write ``text`` to stderr, answer 'ok'."""
    print(text, file=sys.stderr, flush=True)
    return "ok"


if __name__ == "__main__":
    app.run()
