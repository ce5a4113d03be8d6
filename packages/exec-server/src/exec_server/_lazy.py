"""Lazy re-exports for a package's ``__init__`` (PEP 562): each name is imported from its
submodule when it is first used, so importing the package (or one submodule) costs only that."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["lazy_exports"]


def lazy_exports(package: str, where: Mapping[str, str]) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        where: each re-exported name -> the submodule that defines it (relative: ``".tree"``).
            List the same names under ``if TYPE_CHECKING:`` imports for the type checker.

    Returns:
        ``__getattr__(name)``, which raises :class:`AttributeError` for a name not in ``where``.
    """

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(module, package), name)

    return __getattr__
