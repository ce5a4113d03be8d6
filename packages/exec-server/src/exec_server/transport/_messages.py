"""WebSocket data frames -> whole messages, shared by the server and the client transports."""

from __future__ import annotations

from websockets.frames import Frame, Opcode

__all__ = ["MessageAssembler"]


class MessageAssembler:
    """Joins a message's fragments; text and binary frames are read alike (JSON either way)."""

    __slots__ = ("_fragments",)

    def __init__(self) -> None:
        self._fragments: list[bytes] = []

    def feed(self, frame: Frame) -> bytes | None:
        """The whole message this frame completes, or None (a fragment, a control frame)."""
        opcode = frame.opcode
        if opcode is Opcode.TEXT or opcode is Opcode.BINARY:
            if frame.fin:
                return bytes(frame.data)
            self._fragments = [bytes(frame.data)]
        elif opcode is Opcode.CONT:
            self._fragments.append(bytes(frame.data))
            if frame.fin:
                data = b"".join(self._fragments)
                self._fragments = []
                return data
        return None
