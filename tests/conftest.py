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
