"""`genprior serve`: the JSON API over HTTP, the command, and the page in a real headless chromium (selenium).

The browser tests need Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them); without them
they fail with the install line, never skip. Restorations use the 32-px ``genprior-digits32`` and a few steps.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import asdict
from http.client import HTTPConnection
from pathlib import Path

import pytest
import torch
from PIL import Image

from genprior.generators.sampling import sample_images
from genprior.io import zoo
from genprior.io.checkpoints import load_generator
from genprior.calibration import Calibration, generator_hash
from genprior.io.images import IMAGE_SUFFIXES, save_image
from genprior.restore import TASKS, RestoreOptions, restore
from genprior.result import Reconstruction
from genprior.web import make_server
from genprior.web.jobs import Job
from genprior.web.server import STATIC

torch.set_num_threads(1)
FAST = "model=genprior-digits32&task=superres&factor=2&steps=4&extension=none&simulate=on"
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def server():
    srv = make_server("127.0.0.1", 0, device="cpu")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(10)


@pytest.fixture(scope="module")
def digit(tmp_path_factory) -> Path:
    """A 32x32 grey digit drawn by the generator (a clean image for --simulate)."""
    x = sample_images(load_generator("genprior-digits32", device="cpu"), [3])
    path = tmp_path_factory.mktemp("web") / "digit.png"
    save_image(x[0].cpu(), path)
    return path


def call(srv, method: str, path: str, body: bytes | None = None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request, error statuses included."""
    req = urllib.request.Request(srv.url.rstrip("/") + path, data=body, method=method)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def submit(srv, query: str, data: bytes, filename: str = "digit.png") -> tuple[int, dict]:
    status, _, body = call(srv, "POST", f"/api/jobs?{query}&filename={filename}", data)
    return status, json.loads(body)


def wait(srv, job_id: str, timeout: float = 300) -> tuple[dict, list[float]]:
    """The job's final status and the progress fractions seen on the way."""
    seen, end = [], time.time() + timeout
    while time.time() < end:
        status = json.loads(call(srv, "GET", f"/api/jobs/{job_id}")[2])
        seen.append(status["fraction"])
        if status["state"] not in ("queued", "loading", "running", "saving"):
            return status, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} did not finish in {timeout} s: {status}")


def test_page_is_served_and_refers_to_no_other_host(server):
    status, headers, page = call(server, "GET", "/")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    refs = re.findall(rb'(?:src|href)="([^"]+)"', page)
    assert refs and all(r.startswith(b"/static/") for r in refs), refs
    for f in STATIC.iterdir():
        text = f.read_text().replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]{2,}/|@import|fonts\.", text), f.name
        assert call(server, "GET", f"/static/{f.name}")[0] == 200
    conn = HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
    conn.request("GET", "/static/..%2f__init__.py")  # never a file outside static/
    assert conn.getresponse().status == 404
    assert json.loads(call(server, "GET", "/static/nope.js")[2]) == {"error": "no such file: /static/nope.js"}


def test_other_sites_and_foreign_host_names_are_refused(server, digit):
    port = server.server_address[1]
    conn = HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", f"/api/jobs?{FAST}&filename=digit.png", digit.read_bytes(),
                 {"Origin": "http://evil.example"})
    reply = conn.getresponse()
    assert (reply.status, json.loads(reply.read())) == (
        403, {"error": "requests from another site (http://evil.example) are refused"})
    conn.request("GET", "/api/models", headers={"Host": f"evil.example:{port}"})  # DNS rebinding
    reply = conn.getresponse()
    assert (reply.status, json.loads(reply.read())) == (
        403, {"error": f"the page is served to this computer only, not to host 'evil.example:{port}'"})
    conn.request("GET", "/api/models", headers={"Host": f"localhost:{port}"})
    assert conn.getresponse().status == 200


def test_models_lists_the_zoo_generators(server):
    info = json.loads(call(server, "GET", "/api/models")[2])
    assert [g["name"] for g in info["generators"]] == [m.name for m in zoo.list_models("generator")]
    assert info["default"] == "genprior-faces64" and info["tasks"] == list(TASKS)
    local = {g["name"] for g in info["generators"] if g["local"]}
    assert {"genprior-digits32", "genprior-faces64"} <= local


BAD = [
    ("notes.png", b"not an image", FAST, "notes.png: not a readable image (cannot identify image file 'notes.png')"),
    ("notes.txt", b"hello", FAST, f"notes.txt is not an image genprior reads; upload one of {', '.join(IMAGE_SUFFIXES)}"),
    ("digit.png", b"", FAST, "no image: choose an image file to upload"),
    ("digit.png", None, "model=genprior-digits32", "choose a task (superres, inpaint, denoise or colorize)"),
    ("digit.png", None, "task=deblur", "unknown task 'deblur'; choose from superres, inpaint, denoise, colorize"),
    ("digit.png", None, "task=superres&model=nope", "unknown model 'nope'; choose one of the zoo's generators: "
     + ", ".join(m.name for m in zoo.list_models("generator"))),
    ("digit.png", None, FAST + "&factor=abc", "factor must be a whole number, got 'abc'"),
    ("digit.png", None, FAST + "&sigma=-1", "sigma must be a finite number >= 0, got -1.0"),
    ("digit.png", None, "task=inpaint&steps=0", "steps must be >= 1, got 0"),
    ("digit.png", None, "task=inpaint&mask=/etc/passwd", "unknown mask '/etc/passwd'; choose center[:fraction], "
     "brgm-0..brgm-6, boxes[:n], pixels[:dropped fraction]"),
    ("digit.png", None, "task=denoise&method=bigprior&extension=tune",
     "extension is for the methods map, vi and mcmc, not bigprior"),
    ("digit.png", None, "task=superres&method=bigprior", "BIGPrior handles colorize, inpaint and denoise, not superres"),
    ("digit.png", None, FAST + "&bogus=1", "unknown option 'bogus'; the page sends model, task, method, factor, "
     "kernel, mask, sigma, simulate, samples, steps, seed, extension, consistency, calibration, filename"),
    ("digit.png", None, FAST + "&calibration=ffffffffffff",
     "unknown calibration 'ffffffffffff'; upload the calibration file again"),
    ("digit.png", None, FAST + "&calibration=../../x", "unknown calibration '../../x'; upload the calibration file again"),
]


@pytest.mark.parametrize("filename, data, query, message", BAD)
def test_bad_input_is_answered_400_with_one_line(server, digit, filename, data, query, message):
    before = sorted(server.runner.root.iterdir())
    status, reply = submit(server, query, digit.read_bytes() if data is None else data, filename)
    assert (status, reply) == (400, {"error": message})
    assert sorted(server.runner.root.iterdir()) == before  # nothing left behind


def test_a_job_reports_progress_and_serves_what_restore_gives(server, digit, tmp_path):
    status, job = submit(server, FAST, digit.read_bytes())
    assert status == 202 and job["state"] in ("queued", "loading")
    final, seen = wait(server, job["id"])
    assert final["state"] == "done", final
    assert (final["step"], final["total"], final["fraction"], final["stage"]) == (4, 4, 1.0, "map")
    assert seen == sorted(seen)
    names = [f["name"] for f in final["files"]]
    assert names[:3] == ["restored.png", "observation.png", "truth.png"]
    assert {"report.png", "index.html", "config.json", "state.safetensors"} <= set(names)
    assert set(final["metrics"]) == {"restored", "baseline", "pseudo_inverse"}

    # the same restoration as the Python API with the same options and seed
    G = load_generator("genprior-digits32", device="cpu")
    direct = restore(digit, G, RestoreOptions(task="superres", factor=2, steps=4, extension="none", simulate=True))
    direct.save(tmp_path / "direct")
    code, headers, png = call(server, "GET", f"/api/jobs/{job['id']}/files/restored.png?download=1")
    assert code == 200 and headers["Content-Type"] == "image/png" and png.startswith(PNG)
    assert headers["Content-Disposition"] == 'attachment; filename="restored.png"'
    assert png == (tmp_path / "direct" / "restored.png").read_bytes()
    assert Image.open(io.BytesIO(png)).size == (32, 32)
    config = json.loads(call(server, "GET", f"/api/jobs/{job['id']}/files/config.json")[2])
    assert config["config"]["input"] == "digit.png"  # the upload's name, not the temp path

    code, headers, data = call(server, "GET", f"/api/jobs/{job['id']}/result.zip")
    inside = zipfile.ZipFile(io.BytesIO(data)).namelist()
    assert code == 200 and set(names) <= set(inside) and "report_0_0.png" in inside
    assert call(server, "GET", f"/api/jobs/{job['id']}/files/report_0_0.png")[0] == 200  # the report page's parts
    assert call(server, "GET", f"/api/jobs/{job['id']}/files/input.png")[0] == 404


def test_a_second_job_is_refused_while_one_runs_and_cancel_stops_it(server, digit):
    status, job = submit(server, FAST.replace("steps=4", "steps=100000"), digit.read_bytes())
    assert status == 202
    status, reply = submit(server, FAST, digit.read_bytes())
    assert status == 409 and reply["error"].startswith("a restoration is already running (digit.png")
    assert reply["error"].endswith("; wait for it to finish or cancel it")
    assert call(server, "POST", f"/api/jobs/{job['id']}/cancel", b"")[0] == 200
    final, _ = wait(server, job["id"])
    assert (final["state"], final["error"], final["files"]) == ("cancelled", "cancelled", [])
    assert call(server, "GET", "/api/jobs/0123456789ab")[0] == 404


def test_an_error_found_after_loading_the_model_ends_the_job_with_one_line(server, digit):
    status, job = submit(server, FAST.replace("factor=2", "factor=3"), digit.read_bytes())
    final, _ = wait(server, job["id"])
    assert (final["state"], final["error"]) == (
        "error", "the super-resolution factor 3 does not divide the generator's resolution 32")


def _calibration(G_sha256: str, **kw) -> bytes:
    cal = Calibration(alpha=0.1, delta=0.1, lam=2.0, kind="std", bound="rcps", generator_sha256=G_sha256,
                      generator="genprior-digits32", task_options={"task": "superres", "factor": 2, "kernel": "box",
                                                                   "mask": "center", "sigma": None},
                      method="vi", method_settings={}, n_images=20, risk=0.05, risk_bound=0.09, raw_coverage=0.7, **kw)
    return json.dumps(asdict(cal)).encode()


def test_a_calibration_is_uploaded_checked_and_tied_to_its_generator(server, digit):
    status, _, body = call(server, "POST", "/api/calibrations", b"not json")
    assert (status, json.loads(body)) == (400, {"error": "the calibration file: not a genprior calibration file "
                                                         "(Expecting value: line 1 column 1 (char 0))"})
    status, _, body = call(server, "POST", "/api/calibrations", _calibration("0" * 64))
    reply = json.loads(body)
    assert status == 201 and reply["summary"] == ("vi, superres: with probability >= 0.9 over the 20 calibration "
                                                  "images, the expected share of pixels outside [lower, upper] is <= 0.1")
    query = f"{FAST}&calibration={reply['id']}"
    assert submit(server, query, digit.read_bytes()) == (
        400, {"error": "calibration needs a method with samples (vi or mcmc), not map"})
    status, job = submit(server, query + "&method=vi&samples=4", digit.read_bytes())
    final, _ = wait(server, job["id"])
    G_sha = generator_hash(load_generator("genprior-digits32", device="cpu"))
    assert (final["state"], final["error"]) == ("error", "this calibration was made for another generator "
                                                f"(genprior-digits32, sha256 000000000000...), not this one "
                                                f"({G_sha[:12]}...)")


def test_every_picture_a_result_has_is_listed_in_order(server, digit, tmp_path):
    """samples, std, the interval and phi: whatever the result holds is shown and served."""
    x = torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    res = Reconstruction(mean=x, observation=x, std=x / 4, samples=x[:, None].repeat(1, 3, 1, 1, 1), phi=x,
                         images={"lower": x / 2, "upper": (x + 1) / 2}, config={"input": "digit.png"})
    job = Job("fedcba987654", "genprior-digits32", RestoreOptions(task="denoise"), digit, "digit.png",
              server.runner.root / "fedcba987654", state="done")
    res.save(job.result, report=False)
    server.runner.jobs[job.id] = job
    status = json.loads(call(server, "GET", f"/api/jobs/{job.id}")[2])
    assert [(f["name"], f["label"]) for f in status["files"]] == [
        ("restored.png", "Restoration"), ("observation.png", "Observation"), ("samples.png", "Posterior samples"),
        ("std.png", "Per-pixel std"), ("lower.png", "Interval: lower bound"), ("upper.png", "Interval: upper bound"),
        ("phi.png", "φ map (weight of the prior)"), ("config.json", "Settings and metrics (JSON)"),
        ("state.safetensors", "Full state (safetensors)")]
    for f in status["files"]:
        code, _, body = call(server, "GET", f"/api/jobs/{job.id}/files/{f['name']}")
        assert code == 200 and body == (job.result / f["name"]).read_bytes()


def test_restore_passes_every_step_to_the_callback(digit):
    G = load_generator("genprior-digits32", device="cpu")
    steps = []
    restore(digit, G, RestoreOptions(task="superres", factor=2, steps=3, extension="none", simulate=True),
            callback=steps.append)
    assert [(s.stage, s.step) for s in steps] == [("map", 0), ("map", 1), ("map", 2)]


def test_serve_command_listens_and_reports_a_taken_port():
    cmd = [sys.executable, "-m", "genprior.cli", "serve", "--threads", "1"]
    proc = subprocess.Popen(cmd + ["--port", "0"], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        url = re.fullmatch(r"genprior: serving the page on (http://127\.0\.0\.1:\d+/) \(Ctrl-C to stop\)\n", line)
        assert url, line
        with urllib.request.urlopen(url.group(1) + "api/models", timeout=30) as r:
            assert json.loads(r.read())["default"] == "genprior-faces64"
    finally:
        proc.terminate()
        proc.wait(30)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = subprocess.run(cmd + ["--port", str(port)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    assert out.stderr == (f"error: cannot listen on 127.0.0.1:{port} (Address already in use); pass another "
                          "--port or --host\n")


# ------------------------------------------------------------------------------------------ in a browser
@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.fail("the browser tests need Debian's chromium and its driver: apt-get install -y chromium "
                    "chromium-driver (as .ci/run does)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.fail("the browser tests need selenium: pip install -e '.[test]'")
    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-dev-shm-usage",
                f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        opts.add_argument(arg)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    yield driver
    driver.quit()


def _until(driver, script: str, timeout: float = 300):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(lambda d: d.execute_script(script))


def _choose(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def _type(driver, element_id: str, text: str) -> None:
    field = driver.find_element("id", element_id)
    field.clear()
    field.send_keys(text)


def test_browser_uploads_an_image_and_shows_and_downloads_the_restoration(server, browser, digit):
    browser.get(server.url)
    _until(browser, "return document.getElementById('model').options.length > 0", 30)
    assert browser.find_element("id", "model").get_attribute("value") == "genprior-faces64"
    _choose(browser, "model", "genprior-digits32")
    _choose(browser, "task", "superres")
    _type(browser, "factor", "2")
    _type(browser, "steps", "4")
    browser.find_element("id", "simulate").click()
    browser.find_element("css selector", "details summary").click()
    _choose(browser, "extension", "none")
    browser.find_element("id", "image").send_keys(str(digit))
    browser.find_element("id", "restore").click()
    width = _until(browser, "const i = document.getElementById('result-restored');"
                            "return i && i.complete && i.naturalWidth")
    assert width == 32
    assert browser.find_element("id", "progress").get_attribute("value") == "1"
    assert browser.find_element("id", "status").text.startswith("done in ")
    assert not browser.find_element("id", "error").is_displayed()
    shown = browser.execute_script("return [...document.querySelectorAll('#gallery img')]"
                                   ".map(i => [i.id, i.naturalWidth])")
    assert ["result-restored", 32] in shown and ["result-observation", 16] in shown
    assert all(w > 0 for _, w in shown), shown
    links = browser.execute_script("return [...document.querySelectorAll('#results a')]"
                                   ".map(a => [a.id, a.getAttribute('href'), a.hasAttribute('download')])")
    ids = {i for i, _, _ in links}
    assert {"download-restored", "download-observation", "download-report", "download-all", "link-index",
            "link-config", "link-state"} <= ids
    for link_id, href, download in links:
        status, headers, body = call(server, "GET", href)
        assert status == 200, (link_id, href)
        if download:
            assert headers["Content-Disposition"].startswith("attachment; filename="), link_id
        if href.endswith(".png?download=1"):
            assert body.startswith(PNG), link_id
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []  # no CSP or load errors


def test_browser_shows_a_clear_message_for_a_file_that_is_not_an_image(server, browser, tmp_path):
    browser.get(server.url)
    _until(browser, "return document.getElementById('model').options.length > 0", 30)
    browser.find_element("id", "restore").click()
    assert browser.find_element("id", "error").text == "choose an image file first"
    for name, text in (("notes.txt", "hello"), ("fake.png", "not a png")):
        (tmp_path / name).write_text(text)
        browser.find_element("id", "image").send_keys(str(tmp_path / name))
        browser.find_element("id", "restore").click()
        _until(browser, "const e = document.getElementById('error'); return !e.hidden && e.textContent", 30)
        message = browser.find_element("id", "error").text
        assert message == (f"notes.txt is not an image genprior reads; upload one of {', '.join(IMAGE_SUFFIXES)}"
                           if name == "notes.txt" else
                           "fake.png: not a readable image (cannot identify image file 'fake.png')")
        assert not browser.find_element("id", "results").is_displayed()
        assert browser.find_element("id", "restore").is_enabled()
