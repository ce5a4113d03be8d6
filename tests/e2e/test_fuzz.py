"""Random malformed input never takes the server down or produces an internal error.

Each seed sends 4,000 frames on one connection (20,000 over the default 5 seeds; more with
``EXEC_SERVER_FUZZ_SEEDS``): requests with mutated params, random JSON and bytes, text frames
with invalid UTF-8 spliced in, and params nested far past the depth limit.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
from exec_server.testing import RawClient
from exec_server_protocol import METHODS

# Paths only ever name the test's own directory (set per test): the fuzz may remove or copy them.
SCALARS: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**63,
    1.5,
    "",
    "x",
    "eA==",
    "!!",
    "relative",
    "a\x00b",
    "é" * 300,
]
KEYS = [
    "processId", "argv", "cwd", "env", "tty", "pipeStdin", "arg0", "envPolicy", "sandbox",
    "afterSeq", "maxBytes", "waitMs", "chunk", "writeId", "closeStdin", "signal", "rows", "cols",
    "path", "dataBase64", "recursive", "force", "sourcePath", "destinationPath", "options",
    "handleId", "offset", "len", "mode", "watchId", "missing", "present", "clientName",
    "resumeSessionId", "configPaths", "requirementsPaths", "ptySize",
]  # fmt: skip


def value(rng: random.Random, base: str, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.6:
        return rng.choice([*SCALARS, base, f"{base}/target", f"{base}/d/x"])
    if roll < 0.8:
        return [value(rng, base, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(KEYS): value(rng, base, depth + 1) for _ in range(rng.randint(0, 4))}


def templates(base: str) -> dict[str, dict[str, Any]]:
    """A valid params object per method: the fuzz mutates one or two fields of it."""
    target = f"{base}/target"
    return {
        "process/start": {"processId": "q", "argv": ["true"], "cwd": base, "env": {}, "tty": False},
        "process/read": {"processId": "p", "afterSeq": 0, "maxBytes": 10, "waitMs": 0},
        "process/write": {"processId": "p", "chunk": "eA==", "writeId": "w"},
        "process/signal": {"processId": "q", "signal": "interrupt"},
        "process/terminate": {"processId": "q"},
        "process/resize": {"processId": "p", "rows": 10, "cols": 10},
        "fs/readFile": {"path": target},
        "fs/writeFile": {"path": target, "dataBase64": "eA=="},
        "fs/createDirectory": {"path": f"{base}/d", "recursive": True},
        "fs/getMetadata": {"path": target},
        "fs/readDirectory": {"path": base},
        "fs/remove": {"path": f"{base}/d", "recursive": True, "force": True},
        "fs/copy": {"sourcePath": target, "destinationPath": f"{base}/d/x", "recursive": False},
        "fs/canonicalize": {"path": target},
        "fs/walk": {"path": base, "options": {"maxDepth": 2, "maxEntries": 10}},
        "fs/open": {"handleId": "h", "path": target, "mode": "read"},
        "fs/readBlock": {"handleId": "h", "offset": 0, "len": 10},
        "fs/writeBlock": {"handleId": "h", "offset": 0, "chunk": "eA=="},
        "fs/close": {"handleId": "h"},
        "fs/watchMissing": {"watchId": 1, "missing": [f"{base}/later"], "present": None},
        "environmentConfig/read": {"cwd": base, "configPaths": [["x"]], "requirementsPaths": []},
        "environment/info": {},
    }


def message(rng: random.Random, i: int, base: str) -> bytes:
    roll = rng.random()
    if roll < 0.05:
        return bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
    if roll < 0.1:
        return orjson.dumps(value(rng, base))
    if roll < 0.25:
        params = {k: value(rng, base) for k in rng.sample(KEYS, rng.randint(0, 6))}
        method = rng.choice([*METHODS, "bogus/method"])
    else:
        method, template = rng.choice(list(templates(base).items()))
        params = dict(template)
        for key in rng.sample(sorted(params), min(len(params), rng.randint(0, 2))):
            params[key] = value(rng, base)
    return orjson.dumps({"id": i, "method": method, "params": params})


def hostile(rng: random.Random, frame: bytes) -> tuple[bytes, bool]:
    """A frame that is not valid JSON-RPC text in a way parsers trip over: returns the bytes
    and whether they go in a text frame (invalid UTF-8 there) or a binary one."""
    if rng.random() < 0.5:
        at = rng.randrange(len(frame) + 1)
        bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80"])
        return frame[:at] + bad + frame[at:], True
    depth = rng.choice([129, 1000, 20_000])
    opener, closer = rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
    method = rng.choice([b"process/read", b"fs/readFile", b"initialize"])
    nested = opener * depth + b"1" + closer * depth
    return b'{"id":7,"method":"' + method + b'","params":' + nested + b"}", rng.random() < 0.5


FRAMES_PER_SEED = 4000
SEEDS = range(int(os.environ.get("EXEC_SERVER_FUZZ_SEEDS", "5")))


@pytest.mark.parametrize("seed", SEEDS)
async def test_random_requests_get_answers_and_never_an_internal_error(
    client: RawClient, tmp_path: Path, seed: int
) -> None:
    rng = random.Random(20261125 + seed)
    base = tmp_path.as_uri()
    await client.call(
        "process/start",
        {"processId": "p", "argv": ["cat"], "cwd": "file:///tmp", "env": {}, "tty": False,
         "pipeStdin": True},
    )  # fmt: skip
    hostile_frames = 0
    for i in range(FRAMES_PER_SEED):
        frame = message(rng, i + 100, base)
        if rng.random() < 0.15:
            data, text = hostile(rng, frame)
            await client.ws.send(data, text=text)
            hostile_frames += 1
        else:
            await client.send_raw(frame)
        if i % 50 == 49:
            # A sync point: the connection still answers (requests run concurrently, so the
            # earlier ones need not all be answered yet).
            info = await client.call("environment/info", timeout=30)
            assert info["platformOs"] == "linux"
    await client.call("environment/info", timeout=30)
    answers = list(client.unmatched)
    assert hostile_frames > FRAMES_PER_SEED // 10
    assert len(answers) > FRAMES_PER_SEED * 2 // 3, "the fuzz sent requests but saw few answers"
    internal = [a for a in answers if a.get("error", {}).get("message") == "internal error"]
    assert not internal, internal[:3]
