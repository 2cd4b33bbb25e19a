"""The local web server: the page's static files and a small JSON API, on the standard library's HTTP server.

Routes (everything is served from the package; no page refers to another host):

* ``GET /``, ``GET /static/<file>``: the page (``genprior/web/static``);
* ``GET /api/models``: the zoo's generators, the default, tasks, methods and option choices;
* ``POST /api/jobs?model=..&task=..&method=..&filename=..`` with the image file as the body: 202 ``{"id"}``;
  400 ``{"error"}`` for bad input (one line), 409 while another restoration runs;
* ``GET /api/jobs/<id>``: the job's status (state, progress, error, notes, metrics, files);
* ``POST /api/calibrations`` with a `genprior calibrate` file as the body: 201 ``{"id", "summary"}``, the id
  to pass as ``calibration=`` (vi / mcmc: the result then has the calibrated interval, lower.png / upper.png);
* ``POST /api/jobs/<id>/cancel``: stop it at the next step;
* ``GET /api/jobs/<id>/files/<name>`` (``?download=1``: as an attachment), ``GET /api/jobs/<id>/result.zip``.
"""

from __future__ import annotations

import io
import ipaddress
import json
import mimetypes
import re
import shutil
import sys
import traceback
import zipfile
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .. import __version__
from ..restore import METHODS, TASKS
from ..physics.superres import KERNELS
from . import forms
from .jobs import Busy, JobRunner, one_line

STATIC = Path(__file__).resolve().parent / "static"
PAGE_POLICY = ("default-src 'self'; img-src 'self' blob: data:; style-src 'self'; script-src 'self'; "
               "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'self'")
REPORT_POLICY = "default-src 'self'; style-src 'self' 'unsafe-inline'; script-src 'none'; object-src 'none'"
_JOB = re.compile(r"/api/jobs/([0-9a-f]{12})(/cancel|/result\.zip|/files/([A-Za-z0-9_.-]+))?")
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml", ".png": "image/png",
          ".json": "application/json", ".safetensors": "application/octet-stream"}


def models_info() -> dict[str, Any]:
    """What the page's menus offer."""
    from ..io import zoo

    gens = [{"name": m.name, "description": m.description, "license": m.license,
             "local": bool(m.packaged or zoo.cache_path(m).exists())} for m in zoo.list_models("generator")]
    return {"generators": gens, "default": forms.DEFAULT_MODEL, "tasks": list(TASKS), "methods": list(METHODS),
            "masks": list(forms.MASK_PRESETS), "kernels": list(KERNELS), "extensions": list(forms.EXTENSIONS),
            "consistencies": list(forms.CONSISTENCIES), "max_upload_bytes": forms.MAX_UPLOAD_BYTES,
            "version": __version__}


class Server(ThreadingHTTPServer):
    """A `ThreadingHTTPServer` holding the `JobRunner`; ``url`` is where the page is."""

    daemon_threads = True

    def __init__(self, host: str, port: int, runner: JobRunner, *, log: bool = False) -> None:
        self.runner = runner
        self.log = log
        super().__init__((host, port), Handler)
        self.loopback = ipaddress.ip_address(self.server_address[0]).is_loopback

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in str(host) else host}:{port}/"

    def server_close(self) -> None:
        super().server_close()
        self.runner.close()


class Handler(BaseHTTPRequestHandler):
    server: Server
    server_version = f"genprior/{__version__}"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the base class's name)
        if self.server.log:
            super().log_message(format, *args)

    # ----------------------------------------------------------------- replies
    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"error": message})

    def _file(self, path: Path, *, download: bool = False, policy: str = PAGE_POLICY) -> None:
        ctype = _TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        headers = {"Content-Security-Policy": policy}
        if download:
            headers["Content-Disposition"] = f'attachment; filename="{path.name}"'
        self._send(HTTPStatus.OK, path.read_bytes(), ctype, headers)

    # ----------------------------------------------------------------- routes
    def _refused(self) -> str:
        """Why this request is refused ('' if not): another site's page posting here (its Origin differs), or,
        on a loopback address, a Host that is not this computer (DNS rebinding)."""
        host = self.headers.get("Host", "")
        origin = self.headers.get("Origin")
        if self.command == "POST" and origin is not None and urlsplit(origin).netloc != host:
            return f"requests from another site ({origin}) are refused"
        if self.server.loopback and urlsplit(f"//{host}").hostname not in ("127.0.0.1", "localhost", "::1"):
            return f"the page is served to this computer only, not to host {host!r}"
        return ""

    def _safely(self, route: Any) -> None:
        """Run a route; a bug answers 500 with one line (the traceback goes to the server's log)."""
        try:
            refused = self._refused()
            if refused:
                return self._error(HTTPStatus.FORBIDDEN, refused)
            route()
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001
            traceback.print_exc(file=sys.stderr)
            try:
                self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"internal error ({type(exc).__name__}: "
                                                              f"{one_line(exc)}); the server's log has the details")
            except OSError:
                pass

    def do_GET(self) -> None:  # noqa: N802 (the base class's names)
        self._safely(self._get)

    def do_HEAD(self) -> None:  # noqa: N802
        self._safely(self._get)

    def do_POST(self) -> None:  # noqa: N802
        self._safely(self._post)

    def _get(self) -> None:
        url = urlsplit(self.path)
        path, query = url.path, parse_qs(url.query)
        if path in ("/", "/index.html"):
            return self._file(STATIC / "index.html")
        if path.startswith("/static/"):
            name = path[len("/static/"):]
            files = {p.name: p for p in STATIC.iterdir() if p.is_file()}
            if name not in files:
                return self._error(HTTPStatus.NOT_FOUND, f"no such file: {path}")
            return self._file(files[name])
        if path == "/api/models":
            return self._json(HTTPStatus.OK, models_info())
        match = _JOB.fullmatch(path)
        job = self.server.runner.get(match.group(1)) if match else None
        if job is None or (match.group(2) or "").startswith("/cancel"):
            return self._error(HTTPStatus.NOT_FOUND, f"no such job or page: {path}")
        if not match.group(2):
            return self._json(HTTPStatus.OK, job.status())
        shown = {f["name"] for f in job.files()}
        if match.group(2) == "/result.zip":
            if not shown:
                return self._error(HTTPStatus.NOT_FOUND, f"job {job.id} has no result (it is {job.state})")
            return self._zip(job.result, shown, f"genprior-{Path(job.name).stem}-{job.id}.zip")
        name = match.group(3)
        report_part = re.fullmatch(r"report_\d+_\d+\.png", name) and "index.html" in shown
        if name not in shown and not report_part:
            return self._error(HTTPStatus.NOT_FOUND, f"job {job.id} has no file {name}")
        self._file(job.result / name, download=query.get("download", [""])[-1] == "1",
                   policy=REPORT_POLICY if name == "index.html" else PAGE_POLICY)

    def _zip(self, folder: Path, names: set[str], filename: str) -> None:
        names |= {p.name for p in folder.glob("report_*_*.png")}
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
            for name in sorted(names):
                zf.write(folder / name, name)
        self._send(HTTPStatus.OK, buf.getvalue(), "application/zip",
                   {"Content-Disposition": f'attachment; filename="{filename}"'})

    def _post(self) -> None:
        url = urlsplit(self.path)
        if url.path == "/api/jobs":
            return self._submit(url.query)
        if url.path == "/api/calibrations":
            return self._calibration()
        match = _JOB.fullmatch(url.path)
        job = self.server.runner.get(match.group(1)) if match and match.group(2) == "/cancel" else None
        if job is None:
            return self._error(HTTPStatus.NOT_FOUND, f"no such job: {url.path}")
        job.cancel.set()
        self._json(HTTPStatus.OK, job.status())

    def _body(self, limit: int, what: str) -> bytes | None:
        """The request body, or None after answering 400 / 413 (a bad length, over ``limit`` bytes)."""
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self._error(HTTPStatus.BAD_REQUEST, "the request has a bad Content-Length")
            return None
        if length > limit:
            self.close_connection = True
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the {what} is {length / 2**20:.1f} MiB, over the "
                                                            f"{limit / 2**20:g} MiB limit")
            return None
        return self.rfile.read(length) if length > 0 else b""

    def _calibration(self) -> None:
        data = self._body(forms.MAX_CALIBRATION_BYTES, "calibration file")
        if data is None:
            return
        try:
            cal_id, summary = forms.save_calibration(data, self.server.runner.root / "calibrations")
        except forms.FormError as exc:
            return self._error(HTTPStatus.BAD_REQUEST, one_line(exc))
        self._json(HTTPStatus.CREATED, {"id": cal_id, "summary": summary})

    def _submit(self, query: str) -> None:
        data = self._body(forms.MAX_UPLOAD_BYTES, "image")
        if data is None:
            return
        runner = self.server.runner
        job_id, folder = runner.new_folder()
        try:
            model, options, filename = forms.parse_options(query, runner.root / "calibrations")
            image = forms.save_upload(data, filename, folder / "input")
            job = runner.submit(job_id, folder, model, options, image, forms.safe_name(filename))
        except Busy as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return self._error(HTTPStatus.CONFLICT, one_line(exc))
        except forms.FormError as exc:
            shutil.rmtree(folder, ignore_errors=True)
            return self._error(HTTPStatus.BAD_REQUEST, one_line(exc))
        self._json(HTTPStatus.ACCEPTED, job.status())


def make_server(host: str = "127.0.0.1", port: int = 7860, *, device: str = "auto", log: bool = False) -> Server:
    """A bound server (port 0: a free one; see ``.url``); call ``serve_forever()``, then ``server_close()``."""
    return Server(host, port, JobRunner(device=device), log=log)
