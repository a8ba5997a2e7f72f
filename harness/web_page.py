"""The chat page and widget (web/serve.py, what `make run` serves) on a loopback port."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from harness.project import ROOT


def load_serve() -> ModuleType:
    """web/serve.py as a module (web/ is not a package)."""
    spec = importlib.util.spec_from_file_location("chat_cagou_web_serve", ROOT / "web" / "serve.py")
    if spec is None or spec.loader is None:
        raise ImportError("web/serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@contextmanager
def running_web_page(port: int, rasa_url: str, retention_days: str | None = None) -> Iterator[str]:
    """The page on 127.0.0.1:`port`, talking to Rasa at `rasa_url`; yields the page's URL.
    `retention_days` as CHAT_CAGOU_RETENTION_DAYS would say (None: the environment's)."""
    serve = load_serve()
    if not serve.SOCKET_IO.is_file():
        raise RuntimeError("web/node_modules missing: run `npm ci` in web/ (make install does it)")
    server = serve.make_server("127.0.0.1", port, rasa_url, retention_days)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.shutdown()
        server.server_close()
