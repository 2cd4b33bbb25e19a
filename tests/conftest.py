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


class _TFNetwork:
    """Pickles like TF StyleGAN2's ``dnnlib.tflib.network.Network``: a class reference plus a state dict."""

    def __init__(self, state) -> None:  # noqa: ANN001
        self.state = state

    def __getstate__(self):  # noqa: ANN204
        return self.state


@pytest.fixture
def fake_dnnlib(monkeypatch):
    """Stand-in modules ``dnnlib.tflib.network`` for writing TF-style pickles; returns their ``Network`` class."""
    import sys
    import types

    mods = {n: types.ModuleType(n) for n in ["dnnlib", "dnnlib.tflib", "dnnlib.tflib.network"]}
    network = type("Network", (_TFNetwork,), {"__module__": "dnnlib.tflib.network"})
    mods["dnnlib.tflib.network"].Network = network
    for name, mod in mods.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return network


def run_cli(*args):
    """Invoke the ``genprior`` command in-process with string arguments; returns click's Result."""
    from click.testing import CliRunner

    from genprior.cli import main

    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture()
def cli():
    """`run_cli` as a fixture: ``cli("restore", path, "-g", ...)``."""
    return run_cli


def load_script(name: str):
    """The module of ``scripts/<name>.py`` (scripts are not a package), imported afresh."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parent.parent / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
