"""`sfoauth_async.__version__`: the installed distribution's version, as stamina does it."""

from __future__ import annotations

import importlib.metadata

import pytest

import sfoauth_async


def test_version_is_the_distributions() -> None:
    """__version__ is read from the installed metadata, not a copy that can drift."""
    assert importlib.metadata.version("sfoauth-async") == sfoauth_async.__version__


def test_other_missing_attributes_still_raise() -> None:
    """The module __getattr__ answers __version__ only; other names are AttributeError."""
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = sfoauth_async.nope  # type: ignore[attr-defined]
