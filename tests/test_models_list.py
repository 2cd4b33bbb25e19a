"""`genprior models list`: a header row, every licence in full (wrapped at word boundaries, never cut)."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from genprior.cli import main
from genprior.io import zoo


def _list(monkeypatch, tmp_path, columns: int, *args: str) -> list[str]:
    monkeypatch.setenv("GENPRIOR_HOME", str(tmp_path))
    monkeypatch.setenv("COLUMNS", str(columns))
    res = CliRunner().invoke(main, ["models", "list", *args])
    assert res.exit_code == 0, res.output
    return res.output.splitlines()


def _licences(lines: list[str]) -> dict[str, str]:
    """name -> licence text: the licence column of each row plus its continuation lines (those that start with
    spaces; on a narrow terminal the whole licence is on those, under the row)."""
    start = lines[0].find("LICENCE")
    out: dict[str, list[str]] = {}
    for line in lines[1:]:
        if line == "    LICENCE":  # the header's second line on a narrow terminal
            continue
        if line.startswith(" "):
            out[name].append(line.strip())
        else:
            name = line.split()[0]
            out[name] = [line[start:]] if start > 0 else []
    return {k: " ".join(v) for k, v in out.items()}


@pytest.mark.parametrize("columns", [60, 100, 10_000])
def test_header_and_whole_licences(monkeypatch, tmp_path, columns):
    lines = _list(monkeypatch, tmp_path, columns)
    models = zoo.list_models()
    assert " ".join(lines[:2]).split()[:5] == ["NAME", "KIND", "FORMAT", "STATUS", "LICENCE"]
    assert _licences(lines) == {m.name: m.license for m in models}
    if columns < 10_000:  # wrapped to the terminal at word boundaries: no licence line longer than it
        assert all(len(line) <= columns for line in lines if line.startswith(" ") or columns == 100)
        assert len(lines) > len(models) + 2
    else:  # wide enough: one line per model
        assert len(lines) == len(models) + 1
    row = next(line for line in lines if line.startswith("genprior-digits32 "))
    assert row.split()[1:4] == ["generator", "native", "packaged"]


def test_kind_filter_keeps_the_header(monkeypatch, tmp_path):
    lines = _list(monkeypatch, tmp_path, 200, "--kind", "perceptual")
    assert lines[0].split() == ["NAME", "KIND", "FORMAT", "STATUS", "LICENCE"]
    assert set(_licences(lines)) == {m.name for m in zoo.list_models("perceptual")}
