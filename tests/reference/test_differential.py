"""The same request script against the reference and ours: results and errors must have the
same shape (ours may add fields), the same error codes, and — where we chose to match — the
same messages. Skipped when the reference is not installed."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from exec_server.testing import RawClient, ServerProcess

from tests.support import ENV, start_params

pytestmark = pytest.mark.reference


@dataclass
class Step:
    method: str
    params: Any = None
    same_message: bool = False
    """Compare error messages too (not just codes)."""
    ignore_values: set[str] = field(default_factory=set)
    """Result keys whose values legitimately differ (ids, paths, versions)."""
    until_closed: bool = False
    """A ``process/read``, repeated until it reports ``closed``: how much one long poll
    returns depends on timing, on both servers."""


def shape(value: Any) -> Any:
    """A value's type tree: dict keys with their shapes, list item shapes, scalar types."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value[:1]]
    return type(value).__name__


def assert_superset(ours: Any, ref: Any, where: str) -> None:
    if isinstance(ref, dict):
        assert isinstance(ours, dict), where
        missing = set(ref) - set(ours)
        assert not missing, f"{where}: we lack {missing}"
        for key in ref:
            assert_superset(ours[key], ref[key], f"{where}.{key}")
    elif isinstance(ref, list):
        assert isinstance(ours, list), where
        if ref and ours:
            assert_superset(ours[0], ref[0], f"{where}[0]")
    elif ref != "NoneType" and ours != "NoneType":
        assert ours == ref, f"{where}: {ours} != {ref}"


async def run(url: str, steps: list[Step]) -> list[dict[str, Any]]:
    c = await RawClient.connect(url)
    out = []
    for step in steps:
        if step is INITIALIZED:
            await c.notify("initialized", {})
            continue
        resp = await c.request_raw(step.method, step.params)
        async with asyncio.timeout(30):
            while step.until_closed and not resp.get("result", {}).get("closed", True):
                resp = await c.request_raw(step.method, step.params)
        resp.pop("id")
        out.append(resp)
    await c.aclose()
    return out


def compare(ours: list[dict[str, Any]], ref: list[dict[str, Any]], steps: list[Step]) -> None:
    steps = [s for s in steps if s is not INITIALIZED]
    for step, o, r in zip(steps, ours, ref, strict=True):
        where = f"{step.method} {step.params!r:.80}"
        assert ("error" in o) == ("error" in r), f"{where}: ours {o!r:.200} ref {r!r:.200}"
        if "error" in r:
            assert o["error"]["code"] == r["error"]["code"], f"{where}: {o} vs {r}"
            if step.same_message:
                assert o["error"]["message"] == r["error"]["message"], where
        else:
            assert_superset(shape(o["result"]), shape(r["result"]), where)
            if isinstance(r["result"], dict):
                for key, value in r["result"].items():
                    if key not in step.ignore_values and not isinstance(value, dict | list):
                        assert o["result"][key] == value, f"{where}.{key}"


async def both(reference: ServerProcess, steps: list[Step]) -> None:
    async with ServerProcess() as ours:
        ref_out = await run(reference.url, steps)
        our_out = await run(ours.url, steps)
    compare(our_out, ref_out, steps)


INIT = Step("initialize", {"clientName": "diff"}, ignore_values={"sessionId"})
INITIALIZED = Step("initialized")
"""Not a request: send the `initialized` notification."""


async def test_handshake_errors_match(reference: ServerProcess) -> None:
    steps = [
        Step("no/such"),
        Step("environment/info", same_message=True),
        Step("process/start", start_params("p", ["true"]), same_message=True),
        Step("fs/readFile", {"path": "file:///etc/hostname"}, same_message=True),
        Step("process/start", {**start_params("p", ["true"]), "argv": "ls"}),
        Step("initialize", {}),
        Step("initialize", {"clientName": "x", "resumeSessionId": "nope"}, same_message=True),
        INIT,
        Step("environment/info", same_message=True),
        Step("process/start", start_params("p", ["true"], cwd="relative"), same_message=True),
        Step("fs/readFile", {"path": "relative"}, same_message=True),
        Step("initialize", {"clientName": "x"}, same_message=True),
        INITIALIZED,
        Step("environment/info", ignore_values={"providerId", "executorVersion"}),
    ]
    await both(reference, steps)


async def test_raw_frames_get_the_same_error_codes(reference: ServerProcess) -> None:
    frames = [
        "{not json",
        "[]",
        "42",
        '{"id":1}',
        '{"id":1.5,"method":"x"}',
        '{"id":null,"method":"x"}',
    ]
    async with ServerProcess() as ours:
        for url_kind in ("ours", "ref"):
            url = ours.url if url_kind == "ours" else reference.url
            c = await RawClient.connect(url)
            await c.handshake()
            for frame in frames:
                await c.send_raw(frame)
                err = await c.next_unmatched(timeout=10)
                assert err["id"] == -1, (url_kind, frame)
                assert err["error"]["code"] == -32600, (url_kind, frame)
            await c.aclose()


async def test_process_method_results_and_errors_match(
    reference: ServerProcess, tmp_path: Path
) -> None:
    steps = [
        INIT,
        INITIALIZED,
        Step("process/start", start_params("a", ["sh", "-c", "echo hi; echo err >&2; exit 3"])),
        Step("process/start", start_params("e", []), same_message=True),
        Step("process/start", start_params("a", ["true"]), same_message=True),
        Step("process/start", start_params("m", ["/no/such/prog"]), same_message=True),
        Step(
            "process/start", start_params("c", ["true"], cwd="file:///no/such"), same_message=True
        ),
        Step("process/start", start_params("r", ["true"], cwd="tmp"), same_message=True),
        Step("process/start", start_params("q", ["true"], cwd="file:///tmp?x"), same_message=True),
        Step(
            "process/start", start_params("n", ["true"], cwd="file://server/x"), same_message=True
        ),
        Step("process/start", {k: v for k, v in start_params("t", ["true"]).items() if k != "tty"}),
        Step("process/read", {"processId": "a", "waitMs": 3000}, until_closed=True),
        Step("process/read", {"processId": "nope"}, same_message=True),
        Step("process/read", {"processId": "a", "afterSeq": -1}),
        Step("process/start", start_params("cat", ["cat"], pipeStdin=True)),
        Step("process/write", {"processId": "cat", "chunk": "aGkK", "writeId": "1"}),
        Step("process/write", {"processId": "cat", "chunk": "aGkK", "writeId": "1"}),
        Step("process/write", {"processId": "cat", "chunk": "!!", "writeId": "2"}),
        Step(
            "process/write", {"processId": "cat", "chunk": "eA==", "writeId": ""}, same_message=True
        ),
        Step("process/write", {"processId": "cat", "chunk": "eA=="}),
        Step("process/write", {"processId": "nope", "chunk": "eA==", "writeId": "3"}),
        Step("process/start", start_params("sl", ["sleep", "30"])),
        Step("process/write", {"processId": "sl", "chunk": "eA==", "writeId": "4"}),
        Step("process/signal", {"processId": "nope", "signal": "interrupt"}),
        Step("process/terminate", {"processId": "nope"}),
        Step("process/terminate", {"processId": "sl"}),
        Step("process/terminate", {"processId": "cat"}),
    ]
    await both(reference, steps)


async def test_notification_sequences_match(reference: ServerProcess) -> None:
    script = "echo one; echo two >&2; sleep 0.05; echo three; exit 7"

    async def events(url: str) -> list[tuple[str, Any, Any, Any]]:
        c = await RawClient.connect(url)
        await c.handshake()
        await c.call("process/start", start_params("s", ["sh", "-c", script], env=dict(ENV)))
        result = await c.collect("s")
        await c.aclose()
        out = []
        for e in sorted(result["events"], key=lambda e: e["params"]["seq"]):
            p = e["params"]
            chunk = base64.b64decode(p["chunk"]) if "chunk" in p else None
            out.append((e["method"], p.get("stream"), chunk, p.get("exitCode")))
        return out

    async with ServerProcess() as ours:
        ref_events = await events(reference.url)
        our_events = await events(ours.url)

    # Chunking may differ; the per-stream bytes, the exit code and `closed` last must not. The
    # reference may send output after `exited` (seen under load); ours never does for a
    # process without background children (docs/protocol.md §5).
    def summary(evs: list[tuple[str, Any, Any, Any]]) -> tuple[Any, ...]:
        streams: dict[str, bytes] = {}
        for method, stream, chunk, _ in evs:
            if method == "process/output":
                streams[stream] = streams.get(stream, b"") + chunk
        exits = [code for method, _, _, code in evs if method == "process/exited"]
        return streams, exits, evs[-1][0]

    assert summary(our_events) == summary(ref_events)
    assert [m for m, _, _, _ in our_events[-2:]] == ["process/exited", "process/closed"]


async def test_fs_method_results_and_errors_match(reference: ServerProcess, tmp_path: Path) -> None:
    (tmp_path / "f.txt").write_text("hello\n")
    (tmp_path / "d").mkdir()
    (tmp_path / "link").symlink_to("f.txt")
    base = tmp_path.as_uri()
    steps = [
        INIT,
        INITIALIZED,
        Step("fs/readFile", {"path": f"{base}/f.txt"}),
        Step("fs/readFile", {"path": f"{base}/d"}, same_message=True),
        Step("fs/readFile", {"path": f"{base}/missing"}, same_message=True),
        Step("fs/readFile", {"path": "relative"}, same_message=True),
        Step("fs/readFile", {"path": "file://server/x"}),
        Step("fs/getMetadata", {"path": f"{base}/link"}, ignore_values={"modifiedAtMs"}),
        Step("fs/getMetadata", {"path": f"{base}/missing"}, same_message=True),
        Step("fs/writeFile", {"path": f"{base}/w.txt", "dataBase64": "aGk="}),
        Step("fs/writeFile", {"path": f"{base}/w.txt", "dataBase64": "!!"}),
        Step(
            "fs/writeFile", {"path": f"{base}/nodir/w.txt", "dataBase64": "aGk="}, same_message=True
        ),
        Step("fs/createDirectory", {"path": f"{base}/n1/n2"}),
        Step("fs/createDirectory", {"path": f"{base}/n1", "recursive": False}, same_message=True),
        Step("fs/readDirectory", {"path": f"{base}/n1"}),
        Step("fs/canonicalize", {"path": f"{base}/link"}, ignore_values={"path"}),
        Step(
            "fs/copy",
            {"sourcePath": f"{base}/d", "destinationPath": f"{base}/d2", "recursive": False},
            same_message=True,
        ),
        Step("fs/remove", {"path": f"{base}/missing", "force": False}),
        Step("fs/remove", {"path": f"{base}/n1"}),
        Step(
            "fs/walk",
            {
                "path": base,
                "options": {
                    "maxDepth": 0,
                    "maxEntries": 0,
                    "maxDirectories": 1,
                    "followDirectorySymlinks": False,
                    "pruneHiddenDirectories": False,
                },
            },
            same_message=True,
        ),
        Step("fs/open", {"handleId": "h", "path": f"{base}/f.txt"}),
        Step("fs/open", {"handleId": "h", "path": f"{base}/f.txt"}, same_message=True),
        Step("fs/readBlock", {"handleId": "h", "offset": 0, "len": 3}),
        Step("fs/readBlock", {"handleId": "h", "offset": 0, "len": 0}, same_message=True),
        Step("fs/readBlock", {"handleId": "nope", "offset": 0, "len": 1}, same_message=True),
        Step("fs/close", {"handleId": "h"}),
        Step("fs/close", {"handleId": "h"}),
        Step("fs/watchMissing", {"watchId": 1, "missing": [f"{base}/later"], "present": None}),
    ]
    await both(reference, steps)
