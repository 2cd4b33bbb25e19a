"""``genprior serve``: a local, offline web page to restore an image (extra ``genprior[web]``: the standard
library is enough).

`make_server(host, port)` binds the server (`genprior.web.server`), whose jobs (`genprior.web.jobs`) run
`genprior.restore.restore` in a background thread with a step callback for the progress bar; `serve` runs it
until Ctrl-C. The page itself is static HTML, JS and CSS in ``genprior/web/static``.
"""

from __future__ import annotations

from typing import Callable

from .server import Server, make_server

__all__ = ["Server", "make_server", "serve"]


def serve(host: str = "127.0.0.1", port: int = 7860, *, device: str = "auto", log: bool = False,
          on_ready: Callable[[Server], None] | None = None) -> None:
    """Serve the page until interrupted; ``on_ready(server)`` is called once it listens (e.g. to print its URL)."""
    server = make_server(host, port, device=device, log=log)
    try:
        if on_ready is not None:
            on_ready(server)
        server.serve_forever()
    finally:
        server.server_close()
