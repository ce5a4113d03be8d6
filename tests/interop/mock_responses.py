"""A small local mock of the OpenAI Responses API, for driving the stock Codex CLI.

It listens on 127.0.0.1 (plain HTTP/1.1), answers ``POST .../responses`` with a Server-Sent
Events stream, and records every request body. What the "model" says is decided by a
:class:`Script`: a list of steps, each either a tool call or the final message. The step to
play is the number of tool outputs for *this script's* calls already present in the request's
``input`` (so a retried request replays the same step rather than skipping one).

Event shapes follow what Codex parses (``response.created``, ``response.output_item.done`` with a
``function_call`` / ``custom_tool_call`` / ``message`` item, ``response.completed`` with usage).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Final",
    "MockResponses",
    "Script",
    "ToolCall",
    "tool_outputs",
]

Json = dict[str, Any]


@dataclass
class ToolCall:
    """The model calls a tool. ``arguments`` is JSON-encoded for function tools; for custom
    (freeform) tools such as ``apply_patch`` set ``custom=True`` and pass the raw input text."""

    name: str
    arguments: Json | str
    custom: bool = False
    namespace: str | None = None
    call_id: str = field(default_factory=lambda: f"call_{uuid.uuid4().hex[:12]}")

    def item(self) -> Json:
        if self.name == "tool_search":
            # Codex's client-executed tool search: arguments are an object, not a string.
            return {
                "type": "tool_search_call",
                "call_id": self.call_id,
                "execution": "client",
                "status": "completed",
                "arguments": self.arguments,
            }
        if self.custom:
            assert isinstance(self.arguments, str)
            return {
                "type": "custom_tool_call",
                "call_id": self.call_id,
                "name": self.name,
                "input": self.arguments,
            }
        args = self.arguments if isinstance(self.arguments, str) else json.dumps(self.arguments)
        item: Json = {
            "type": "function_call",
            "call_id": self.call_id,
            "name": self.name,
            "arguments": args,
        }
        if self.namespace is not None:
            item["namespace"] = self.namespace
        return item


@dataclass
class Final:
    """The model ends the turn with a message."""

    text: str

    def item(self) -> Json:
        return {
            "type": "message",
            "role": "assistant",
            "id": f"msg_{uuid.uuid4().hex[:12]}",
            "content": [{"type": "output_text", "text": self.text}],
        }


Step = ToolCall | Final | Callable[[Json], "ToolCall | Final"]


@dataclass
class Script:
    """The scripted model side of one conversation. A step may be a callable that builds the
    step from the request body (for example from the output of the previous call)."""

    steps: list[Step]
    played: list[ToolCall | Final] = field(default_factory=list)

    def next_item(self, body: Json) -> ToolCall | Final:
        done = {c.call_id for c in self.played if isinstance(c, ToolCall)}
        answered = sum(1 for o in tool_outputs(body) if o.get("call_id") in done)
        index = min(answered, len(self.steps) - 1)
        if index < len(self.played):
            return self.played[index]  # a retry of a request we already answered
        step = self.steps[index]
        made = step if isinstance(step, ToolCall | Final) else step(body)
        self.played.append(made)
        return made

    def call_ids(self) -> list[str]:
        return [c.call_id for c in self.played if isinstance(c, ToolCall)]


def tool_outputs(body: Json) -> list[Json]:
    """Every tool output item (``function_call_output``, ``custom_tool_call_output``,
    ``tool_search_output``, ...) in a request body's ``input``."""
    items = body.get("input") or []
    return [i for i in items if isinstance(i, dict) and str(i.get("type", "")).endswith("_output")]


def output_text(item: Json) -> str:
    """The text of a tool output item (a string, or a list of content parts)."""
    out = item.get("output")
    if isinstance(out, str):
        return out
    if isinstance(out, list):
        return "".join(str(p.get("text", "")) for p in out if isinstance(p, dict))
    if isinstance(out, dict):
        return str(out.get("content", json.dumps(out)))
    if out is None:
        return json.dumps(item)  # e.g. tool_search_output: the whole item
    return json.dumps(out)


class MockResponses:
    """``async with MockResponses(script) as mock: mock.base_url`` (…/v1)."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[Json] = []
        self.other_requests: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self._server: asyncio.Server | None = None
        self.port = 0
        self.request_event = asyncio.Event()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def __aenter__(self) -> MockResponses:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self._server.wait_closed()

    # ------------------------------------------------------------------ queries

    def outputs(self) -> dict[str, Json]:
        """call_id -> the last tool output item Codex sent for it."""
        found: dict[str, Json] = {}
        for body in self.requests:
            for item in tool_outputs(body):
                found[str(item.get("call_id"))] = item
        return found

    def output_for(self, call: ToolCall) -> str:
        item = self.outputs().get(call.call_id)
        assert item is not None, f"Codex sent no output for {call.name} ({call.call_id})"
        return output_text(item)

    # ------------------------------------------------------------------ HTTP

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        except Exception as e:  # recorded for the test to report
            self.errors.append(repr(e))
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            raw = bytearray()
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                raw += await reader.readexactly(size + 2)
                del raw[-2:]
                if size == 0:
                    await reader.readuntil(b"\r\n")
                    break
        else:
            raw = bytearray(await reader.readexactly(int(headers.get("content-length", "0"))))
        path = target.split("?", 1)[0]
        if method == "POST" and path.endswith("/responses"):
            if headers.get("content-encoding"):
                self.errors.append(f"compressed request body: {headers['content-encoding']}")
                await self._plain(writer, 400, b"{}")
                return False
            body = json.loads(raw)
            self.requests.append(body)
            self.request_event.set()
            item = self.script.next_item(body)
            await self._sse(writer, item)
            return False
        self.other_requests.append((method, target))
        if path.endswith("/models"):
            await self._plain(writer, 200, b'{"models":[]}')
        else:
            await self._plain(writer, 404, b"{}")
        return headers.get("connection", "").lower() != "close"

    @staticmethod
    async def _plain(writer: asyncio.StreamWriter, status: int, body: bytes) -> None:
        writer.write(
            f"HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n".encode()
            + body
        )
        await writer.drain()

    @staticmethod
    async def _sse(writer: asyncio.StreamWriter, made: ToolCall | Final) -> None:
        rid = f"resp_{uuid.uuid4().hex[:12]}"
        events: list[Json] = [
            {"type": "response.created", "response": {"id": rid}},
            {"type": "response.output_item.done", "item": made.item()},
            {
                "type": "response.completed",
                "response": {
                    "id": rid,
                    "usage": {
                        "input_tokens": 0,
                        "input_tokens_details": None,
                        "output_tokens": 0,
                        "output_tokens_details": None,
                        "total_tokens": 0,
                    },
                },
            },
        ]
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
            b"cache-control: no-cache\r\nconnection: close\r\n\r\n"
        )
        for ev in events:
            writer.write(f"event: {ev['type']}\ndata: {json.dumps(ev)}\n\n".encode())
        await writer.drain()
