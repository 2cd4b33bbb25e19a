"""Tests of the model zoo: registry, cache resolution and a resumable, hash-checked download with progress.

Files are random bytes made here and served by a local HTTP server; nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import hashlib
import random
import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Iterator

import pytest

from genprior import paths
from genprior.errors import DownloadError, GenpriorError
from genprior.io import download as download_module
from genprior.io import zoo

REAL_SHARED = paths.shared_dir()  # read before any test changes GENPRIOR_SHARED
TIMEOUT = 5.0


# ----------------------------------------------------------------------------------------------- server


@dataclass
class Served:
    """A local file server's state: its folder, its misbehaviours, and what it saw."""

    root: Path
    base: str = ""
    ignore_range: bool = False
    drop_after: int | None = None  # send only this many body bytes once, then close the connection
    stall: float = 0.0  # seconds to wait before answering
    release: threading.Event = field(default_factory=threading.Event)
    log: list[dict] = field(default_factory=list)
    stop: Callable[[], None] = lambda: None

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def requests_for(self, name: str) -> list[dict]:
        return [r for r in self.log if r["path"] == f"/{name}"]


class _Handler(BaseHTTPRequestHandler):
    """GET with optional Range support, interruption and stalling, driven by the server's `Served`."""

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        try:
            self._serve(self.server.state)  # type: ignore[attr-defined]
        except ConnectionError:  # the client gave up (timeout test): nothing to report
            pass

    def _serve(self, state: Served) -> None:
        record = {"path": self.path, "range": self.headers.get("Range"),
                  "agent": self.headers.get("User-Agent"), "status": None, "sent": 0}
        state.log.append(record)
        if state.stall:
            state.release.wait(state.stall)
        file = state.root / self.path.lstrip("/")
        if not file.is_file():
            record["status"] = 404
            self.send_error(404)
            return
        body = file.read_bytes()
        start = self._range_start(state, record["range"])
        if start is not None and start >= len(body):
            record["status"] = 416
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(body)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if start is None:
            record["status"] = 200
            start = 0
            self.send_response(200)
        else:
            record["status"] = 206
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Content-Type", "application/octet-stream")
        self.end_headers()
        if state.drop_after is not None:
            chunk, state.drop_after = chunk[: state.drop_after], None
        record["sent"] = len(chunk)  # before writing: the client may check the log as soon as it has the bytes
        self.wfile.write(chunk)
        self.wfile.flush()
        self.close_connection = True

    @staticmethod
    def _range_start(state: Served, header: str | None) -> int | None:
        if header is None or state.ignore_range:
            return None
        match = re.fullmatch(r"bytes=(\d+)-", header.strip())
        return int(match.group(1)) if match else None

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    """A ThreadingHTTPServer on 127.0.0.1 (free port) serving tmp_path/served; always shut down."""
    state = Served(root=tmp_path / "served")
    state.root.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = state  # type: ignore[attr-defined]
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    stopped = threading.Event()

    def stop() -> None:
        if not stopped.is_set():
            stopped.set()
            state.release.set()
            httpd.shutdown()
            httpd.server_close()
            thread.join(TIMEOUT)

    state.stop = stop
    try:
        yield state
    finally:
        stop()


def make_file(state: Served, name: str, size: int = 300_000, seed: int = 0) -> tuple[bytes, str]:
    """Random bytes written into the served folder; returns them and their sha256."""
    data = random.Random(seed).randbytes(size)
    (state.root / name).write_bytes(data)
    return data, hashlib.sha256(data).hexdigest()


# ----------------------------------------------------------------------------------------------- isolation


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Each test gets its own cache and an empty shared folder, online, with no proxy for 127.0.0.1."""
    home = tmp_path / "home"
    monkeypatch.setenv("GENPRIOR_HOME", str(home))
    empty_shared = tmp_path / "no-shared"
    empty_shared.mkdir()
    monkeypatch.setenv("GENPRIOR_SHARED", str(empty_shared))
    monkeypatch.delenv("GENPRIOR_OFFLINE", raising=False)
    monkeypatch.setenv("GENPRIOR_DOWNLOAD_VERBOSE", "0")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    return home


@pytest.fixture
def registry(monkeypatch: pytest.MonkeyPatch) -> dict[str, zoo.ModelEntry]:
    """A private copy of the registry, restored after the test."""
    copy = dict(zoo._REGISTRY)
    monkeypatch.setattr(zoo, "_REGISTRY", copy)
    return copy


def entry(name: str = "test-model", filename: str = "test-model.bin", urls: tuple[str, ...] = (),
          sha256: str | None = None, **kwargs: object) -> zoo.ModelEntry:
    """A test entry with sensible defaults."""
    return zoo.ModelEntry(name=name, filename=filename, urls=urls, sha256=sha256, license="test only",
                          description="a file made by the tests", format="native", **kwargs)


# ----------------------------------------------------------------------------------------------- download()


def test_download_and_hash_ok(server: Served, tmp_path: Path) -> None:
    data, sha = make_file(server, "a.bin")
    dest = tmp_path / "out" / "a.bin"
    got = zoo.download(server.url("a.bin"), dest, sha256=sha, progress=True, timeout=TIMEOUT)
    assert got == dest and dest.read_bytes() == data
    assert not dest.with_name("a.bin.part").exists()
    assert server.log[0]["agent"].startswith("genprior")
    assert zoo.file_sha256(dest) == sha


def test_wrong_hash_leaves_nothing(server: Served, tmp_path: Path) -> None:
    make_file(server, "a.bin")
    dest = tmp_path / "a.bin"
    with pytest.raises(DownloadError) as info:
        zoo.download(server.url("a.bin"), dest, sha256="0" * 64, progress=False, timeout=TIMEOUT)
    message = str(info.value)
    assert "0" * 64 in message and hashlib.sha256((server.root / "a.bin").read_bytes()).hexdigest() in message
    assert not dest.exists() and not dest.with_name("a.bin.part").exists()


def test_interrupted_download_resumes_with_range(server: Served, tmp_path: Path) -> None:
    data, sha = make_file(server, "a.bin", size=500_000)
    dest = tmp_path / "a.bin"
    part = tmp_path / "a.bin.part"
    server.drop_after = 123_456
    with pytest.raises(DownloadError, match="resumes"):
        zoo.download(server.url("a.bin"), dest, sha256=sha, progress=False, timeout=TIMEOUT)
    assert not dest.exists()
    assert part.stat().st_size == 123_456
    zoo.download(server.url("a.bin"), dest, sha256=sha, progress=False, timeout=TIMEOUT)
    second = server.log[-1]
    assert second["range"] == "bytes=123456-" and second["status"] == 206
    assert second["sent"] == len(data) - 123_456
    assert dest.read_bytes() == data and not part.exists()


def test_server_ignoring_range_restarts_from_zero(server: Served, tmp_path: Path) -> None:
    data, sha = make_file(server, "a.bin")
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(b"stale bytes from some earlier attempt")
    server.ignore_range = True
    zoo.download(server.url("a.bin"), dest, sha256=sha, progress=False, timeout=TIMEOUT)
    assert server.log[-1]["range"] is not None and server.log[-1]["status"] == 200
    assert dest.read_bytes() == data


def test_oversized_part_416_restarts(server: Served, tmp_path: Path) -> None:
    data, sha = make_file(server, "a.bin", size=1000)
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(b"x" * 5000)
    zoo.download(server.url("a.bin"), dest, sha256=sha, progress=False, timeout=TIMEOUT)
    assert [r["status"] for r in server.log] == [416, 200]
    assert dest.read_bytes() == data


def test_http_error_and_timeout_are_download_errors(server: Served, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="404"):
        zoo.download(server.url("missing.bin"), tmp_path / "m.bin", sha256=None, progress=False, timeout=TIMEOUT)
    make_file(server, "slow.bin", size=10)
    server.stall = 3.0
    with pytest.raises(DownloadError, match="timed out"):
        zoo.download(server.url("slow.bin"), tmp_path / "s.bin", sha256=None, progress=False, timeout=0.3)
    assert not (tmp_path / "s.bin").exists()


def test_progress_is_plain_lines_off_a_terminal_and_a_bar_on_one(server: Served, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture) -> None:
    _, sha = make_file(server, "a.bin", size=3 * (1 << 20) + 5)
    monkeypatch.setenv("GENPRIOR_DOWNLOAD_VERBOSE", "1")
    monkeypatch.setattr(download_module, "PROGRESS_INTERVAL", 0.0)  # a line for every chunk
    zoo.download(server.url("a.bin"), tmp_path / "a.bin", sha256=sha, timeout=TIMEOUT)
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\r" not in err and len(lines) >= 4
    line = r"a\.bin: \d+\.\d/3\.0 MiB \(\d+ %\), \d+\.\d s, ETA (\d+ s|\?)"
    assert all(re.fullmatch(line, text) for text in lines), lines
    assert lines[-1].startswith("a.bin: 3.0/3.0 MiB (100 %)")
    monkeypatch.setattr(download_module, "is_terminal", lambda stream: True)
    zoo.download(server.url("a.bin"), tmp_path / "b.bin", sha256=sha, timeout=TIMEOUT)
    err = capsys.readouterr().err
    assert "\r" in err and "b.bin" in err and "MiB (" not in err  # tqdm's bar, not the plain lines
    monkeypatch.setenv("GENPRIOR_DOWNLOAD_VERBOSE", "0")
    zoo.download(server.url("a.bin"), tmp_path / "c.bin", sha256=sha, timeout=TIMEOUT)
    assert capsys.readouterr().err == ""


# ----------------------------------------------------------------------------------------------- fetch()


def test_mirror_fallback(server: Served, registry: dict, isolated: Path) -> None:
    data, sha = make_file(server, "good.bin")
    zoo.register(entry(urls=(server.url("gone.bin"), server.url("good.bin")), sha256=sha))
    path = zoo.fetch("test-model", progress=False)
    assert path == isolated / "models" / "test-model.bin" and path.read_bytes() == data
    assert [r["status"] for r in server.log] == [404, 200]


def test_cached_file_reused_without_network(server: Served, registry: dict) -> None:
    data, sha = make_file(server, "a.bin")
    zoo.register(entry(urls=(server.url("a.bin"),), sha256=sha))
    first = zoo.fetch("test-model", progress=False)
    server.stop()
    assert zoo.fetch("test-model", progress=False) == first
    assert len(server.log) == 1 and first.read_bytes() == data


def test_cached_file_with_wrong_hash_is_downloaded_again(server: Served, registry: dict, isolated: Path) -> None:
    data, sha = make_file(server, "a.bin")
    zoo.register(entry(urls=(server.url("a.bin"),), sha256=sha))
    cached = isolated / "models" / "test-model.bin"
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"corrupt")
    with pytest.warns(UserWarning, match="expected"):
        path = zoo.fetch("test-model", progress=False)
    assert path == cached and cached.read_bytes() == data and len(server.log) == 1


def test_unrecorded_hash_is_trusted_on_first_use(server: Served, registry: dict) -> None:
    data, sha = make_file(server, "a.bin")
    zoo.register(entry(urls=(server.url("a.bin"),)))
    with pytest.warns(zoo.UnverifiedDownloadWarning, match=sha):
        path = zoo.fetch("test-model", progress=False)
    assert path.read_bytes() == data


def test_offline_without_cache_explains_where_to_put_the_file(
    server: Served, registry: dict, isolated: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, sha = make_file(server, "a.bin")
    zoo.register(entry(urls=(server.url("a.bin"),), sha256=sha))
    monkeypatch.setenv("GENPRIOR_OFFLINE", "1")
    assert zoo.is_offline()
    with pytest.raises(DownloadError) as info:
        zoo.fetch("test-model", progress=False)
    message = str(info.value)
    for needle in ("test-model", "test-model.bin", str(isolated / "models" / "test-model.bin"), sha,
                   server.url("a.bin")):
        assert needle in message
    assert server.log == []


def test_all_mirrors_failing_names_every_url(server: Served, registry: dict) -> None:
    urls = (server.url("x.bin"), server.url("y.bin"))
    zoo.register(entry(urls=urls))
    with pytest.raises(DownloadError) as info:
        zoo.fetch("test-model", progress=False)
    assert all(u in str(info.value) for u in urls) and "404" in str(info.value)


def test_genprior_home_decides_cache(server: Served, registry: dict, tmp_path: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    _, sha = make_file(server, "a.bin")
    zoo.register(entry(urls=(server.url("a.bin"),), sha256=sha))
    monkeypatch.setenv("GENPRIOR_HOME", str(tmp_path / "elsewhere"))
    assert zoo.fetch("test-model", progress=False) == tmp_path / "elsewhere" / "models" / "test-model.bin"


def test_search_path_under_shared_dir(registry: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    shared = tmp_path / "shared"
    (shared / "weights").mkdir(parents=True)
    data = b"shared weights"
    (shared / "weights" / "s.bin").write_bytes(data)
    monkeypatch.setenv("GENPRIOR_SHARED", str(shared))
    sha = hashlib.sha256(data).hexdigest()
    zoo.register(entry(sha256=sha, search=("weights/s.bin",)))
    assert zoo.fetch("test-model", offline=True) == shared / "weights" / "s.bin"
    zoo.register(entry(name="bad-hash", sha256="f" * 64, search=("weights/s.bin",)))
    with pytest.warns(UserWarning), pytest.raises(DownloadError, match="no download URL"):
        zoo.fetch("bad-hash")


def test_packaged_file_comes_first(registry: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    packaged = tmp_path / "models"
    packaged.mkdir()
    (packaged / "p.bin").write_bytes(b"packaged")
    monkeypatch.setattr(zoo, "_PACKAGED_DIR", packaged)
    zoo.register(entry(filename="p.bin", packaged=True))
    assert zoo.fetch("test-model", offline=True) == packaged / "p.bin"


# ----------------------------------------------------------------------------------------------- registry


def test_unknown_name_suggests_close_one() -> None:
    with pytest.raises(KeyError) as info:
        zoo.get_entry("brgm-ffhq")
    assert isinstance(info.value, GenpriorError)
    assert "brgm-ffhq-1024" in str(info.value)


def test_register_refuses_a_different_entry_under_a_taken_name(registry: dict) -> None:
    zoo.register(entry())
    zoo.register(entry())  # the same entry again is fine
    with pytest.raises(GenpriorError):
        zoo.register(entry(filename="other.bin"))
    zoo.register(entry(filename="other.bin"), replace=True)
    assert zoo.get_entry("test-model").filename == "other.bin"


def test_entry_validation() -> None:
    with pytest.raises(GenpriorError):
        entry(sha256="abc")
    with pytest.raises(GenpriorError):
        entry(filename="../escape.bin")
    with pytest.raises(GenpriorError):
        entry(search=("/abs/path",))
    with pytest.raises(GenpriorError):
        zoo.ModelEntry("x", "x.bin", (), None, "MIT", "", format="onnx")


def test_registry_sanity() -> None:
    models = zoo.list_models()
    names = [m.name for m in models]
    assert len(names) == len(set(names)) and len(names) >= 11
    assert len({m.filename for m in models}) == len(models)
    for m in models:
        assert m.license.strip() and m.description.strip()
        assert m.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", m.sha256)
        assert m.urls or m.search or m.packaged or "place it" in m.description
        if m.sha256 is None:
            assert "not recorded" in m.description
    assert {m.name for m in zoo.list_models("perceptual")} >= {"lpips-vgg16", "vgg16-imagenet-features"}
    assert all(m.config and m.config["family"] == "pggan" for m in models if m.format == "mganprior-pth")
    for m in zoo.list_models("fusion"):  # each fusion net names a registered generator and a BIGPrior task
        assert m.config["generator"] in names and m.config["task"] in ("colorize", "inpaint", "denoise")


@pytest.mark.parametrize("name", ["dcgan-digiface64", "vgg16-imagenet-features"])
def test_recorded_hash_of_shared_files(name: str, shared: Path) -> None:
    m = zoo.get_entry(name)
    path = shared / m.search[0]
    assert path.is_file(), f"{path} absent"
    assert zoo.file_sha256(path) == m.sha256
    assert path.stat().st_size == m.size_bytes


@pytest.mark.parametrize("scene, generator", [("bedroom", "pggan-bedroom-256"), ("church", "pggan-churchoutdoor-256")])
def test_official_colorization_nets_are_the_default_for_their_generator(scene: str, generator: str, shared: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from types import SimpleNamespace

    from genprior.methods import FusionNet

    monkeypatch.setenv("GENPRIOR_SHARED", str(shared))  # found in place there (no download URL is known)
    path = zoo.default_fusion(SimpleNamespace(zoo_name=generator), "colorize")
    assert path == shared / "data" / "bigprior-nets" / f"col_{scene}_1" / "net_24.pth"
    net = FusionNet.load(path)
    assert (net.task, net.kind, net.in_channels) == ("colorize", "dncnn", 1)
    with pytest.raises(GenpriorError, match=f"no fusion net in the zoo for {generator} and inpaint"):
        zoo.default_fusion(SimpleNamespace(zoo_name=generator), "inpaint")
