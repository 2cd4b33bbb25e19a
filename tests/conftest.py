"""Shared test fixtures: the shared data folder (``$GENPRIOR_SHARED`` or ../shared beside the repo)."""

from __future__ import annotations

from pathlib import Path

import pytest

from genprior.paths import shared_dir


@pytest.fixture(scope="session")
def shared() -> Path:
    path = shared_dir()
    if path is None or not path.is_dir():
        pytest.fail("the shared data folder is missing: set GENPRIOR_SHARED or place it at ../shared beside the repo")
    return path


class _CallOnUnpickle:
    """An object whose pickle is the call ``func(*args)``: an unsafe reader runs it while unpickling."""

    def __init__(self, func, args) -> None:  # noqa: ANN001
        self.func, self.args = func, args

    def __reduce__(self):  # noqa: ANN204
        return self.func, self.args


@pytest.fixture
def call_on_unpickle():
    """``call_on_unpickle(os.system, "touch x")``: a payload for tests that a reader never runs a pickle's code."""
    return lambda func, *args: _CallOnUnpickle(func, args)
