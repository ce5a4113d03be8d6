"""Base classes fixing the wire casing and the unknown-field policy in one place."""

from __future__ import annotations

import msgspec

__all__ = ["Params", "Result", "WireStruct"]


class WireStruct(msgspec.Struct, rename="camel", kw_only=True):
    """A camelCase wire object. Unknown fields on input are ignored (Codex sends extras)."""


class Params(WireStruct):
    """Base of request and notification parameter objects."""


class Result(WireStruct):
    """Base of response result objects."""


class EmptyParams(Params):
    """Params of methods that take none: omitted, ``null`` and ``{}`` are all accepted."""


class EmptyResult(Result):
    """The ``{}`` result."""
