"""The public surface: `sfoauth_async.__all__` lists exactly the public names (httpx style)."""

from __future__ import annotations
import __future__

import re
import types

import sfoauth_async


def _isort_key(name: str) -> tuple[int, list[int | str]]:
    """The order ruff's RUF022 keeps: CONSTANTS, then CamelCase, then the rest; natural sort."""
    if name.isupper() or (name.upper() == name and any(c.isalpha() for c in name)):
        group = 0
    elif name[:1].isupper():
        group = 1
    else:
        group = 2
    natural = [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]
    return group, natural


def _public_names() -> set[str]:
    """Names in the package namespace, minus private ones, submodules and __future__ flags."""
    return {
        name
        for name, value in vars(sfoauth_async).items()
        if name.isidentifier()
        and not name.startswith("_")
        and not isinstance(value, types.ModuleType | __future__._Feature)
    }


def test_all_is_sorted():
    """__all__ is sorted (constants, classes, then functions) and has no duplicates."""
    exported = sfoauth_async.__all__
    assert exported == sorted(exported, key=_isort_key)
    assert len(set(exported)) == len(exported)


def test_all_is_exactly_the_public_names():
    """Every public name is exported and every exported name exists: nothing leaks."""
    assert set(sfoauth_async.__all__) == _public_names()


def test_exported_classes_read_as_top_level():
    """Exported classes say sfoauth_async.X, not their private module, in reprs and docs."""
    for name in sfoauth_async.__all__:
        value = getattr(sfoauth_async, name)
        if isinstance(value, type):
            assert value.__module__ == "sfoauth_async", name
            assert value.__qualname__ == name
