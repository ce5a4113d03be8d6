"""The server's handler table: one handler per method of the protocol's registry, typed as
the registry says."""

from __future__ import annotations

import typing
from typing import Any

from exec_server.connection import ClientConnection
from exec_server.handlers import HANDLERS, Later
from exec_server_protocol import METHODS


def test_the_table_covers_exactly_the_registry() -> None:
    assert set(HANDLERS) == set(METHODS.values())
    assert all(spec is handler.spec for spec, handler in HANDLERS.items())


def test_each_handler_takes_and_returns_its_methods_types() -> None:
    for spec, handler in HANDLERS.items():
        fn: Any = getattr(handler.run, "__wrapped__", handler.run)
        hints = typing.get_type_hints(fn, localns={"ClientConnection": ClientConnection})
        params = [v for k, v in hints.items() if k != "return"]
        assert params[-1] is spec.params, spec.name
        returned = hints["return"]
        accepted = {spec.result, spec.result | Later[spec.result]}
        assert returned in accepted, f"{spec.name} returns {returned}"


def test_file_methods_run_in_tasks_and_the_rest_answer_at_once() -> None:
    for spec, handler in HANDLERS.items():
        assert handler.in_task == spec.name.startswith("fs/"), spec.name
    big = {spec.name for spec, handler in HANDLERS.items() if handler.big_reply}
    assert big == {"fs/readFile", "fs/readDirectory", "fs/walk"}
