"""Opt-in interop tests with the stock Codex CLI (marker ``codex``).

They run only with EXEC_SERVER_CODEX_INTEROP=1 and the codex binary present
(EXEC_SERVER_REFERENCE_BIN, or scripts/install-reference); otherwise they skip with the reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from harness import Interop, interop_env, skip_reason


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    reason = skip_reason()
    if reason is None:
        return
    for item in items:
        if item.get_closest_marker("codex") is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
async def interop(request: pytest.FixtureRequest) -> AsyncIterator[Interop]:
    async with interop_env(request.node.name) as it:
        yield it
