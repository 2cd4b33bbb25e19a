"""Where genprior looks for things on disk: the cache and the shared data folder.

* `GENPRIOR_HOME`: the cache of downloaded models (default: the user's cache dir, e.g. ``~/.cache/genprior``).
* `GENPRIOR_SHARED`: the folder of shared data sets, weights and fixtures used by tests and benchmarks
  (default: ``../shared`` beside the source checkout, when it exists).
"""

from __future__ import annotations

import os
from pathlib import Path

import platformdirs

REPO_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """The model cache, `$GENPRIOR_HOME` or the platform's user cache dir."""
    env = os.environ.get("GENPRIOR_HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("genprior"))


def shared_dir() -> Path | None:
    """The shared data folder, `$GENPRIOR_SHARED` or ``../shared`` beside the checkout; None if absent."""
    env = os.environ.get("GENPRIOR_SHARED")
    if env:
        return Path(env).expanduser()
    guess = REPO_ROOT.parent / "shared"
    return guess if guess.is_dir() else None
