"""Running the dashboard: uvicorn on 127.0.0.1 unless told otherwise (a warning then), with Host headers checked on
a loopback address."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

from tl_traits.app.serve.catalog import ServeError
from tl_traits.app.serve.dashboard import Dashboard
from tl_traits.app.serve.web import create_app
from tl_traits.core.extras import require

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765


def is_loopback(host: str) -> bool:
    """Whether `host` only listens on this machine (127.0.0.0/8, ::1, localhost)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str) -> str | None:
    """What binding `host` exposes, when it is not a loopback address."""
    if is_loopback(host):
        return None
    return (
        f"binding {host}: the dashboard is reachable from other machines, and anyone who reaches it can run the "
        "model, read the served vectors and prompt sets and queue work; it has no login. Use --host 127.0.0.1 "
        "(the default) unless this network is yours"
    )


def check_port(host: str, port: int) -> None:
    """Fail now, before the model loads, when `host:port` cannot be listened on (taken, or not this machine's)."""
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host.strip("[]"), port))
        except OSError as exc:
            raise ServeError(
                f"cannot listen on {host}:{port} ({exc.strerror or exc}); pick another --port, or a "
                "--host this machine has"
            ) from None


def allowed_hosts(host: str) -> list[str] | None:
    """On a loopback address, only local Host headers (a web page elsewhere cannot rebind a name to 127.0.0.1)."""
    if not is_loopback(host):
        return None
    return ["127.0.0.1", "localhost", "[::1]", "::1", host]


def make_app(dashboard: Dashboard, host: str = DEFAULT_HOST) -> Any:
    return create_app(dashboard, allowed_hosts=allowed_hosts(host))


def run_server(
    dashboard: Dashboard, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, log_level: str = "warning"
) -> None:
    """Serve until Ctrl-C (uvicorn; one process, the model's own thread behind the event loop)."""
    uvicorn = require("uvicorn")
    uvicorn.run(make_app(dashboard, host), host=host, port=port, log_level=log_level, access_log=False)


class BackgroundServer:
    """The dashboard served by uvicorn from a thread of this process (a notebook, a test, a benchmark):
    `with BackgroundServer(dashboard) as server: ... server.url ...`; port 0 picks a free one."""

    def __init__(self, dashboard: Dashboard, host: str = DEFAULT_HOST, port: int = 0) -> None:
        uvicorn = require("uvicorn")
        self.port = port or _free_port(host)
        self.url = f"http://{host}:{self.port}"
        config = uvicorn.Config(
            make_app(dashboard, host), host=host, port=self.port, log_level="warning", access_log=False
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="tl-traits-serve-http", daemon=True)

    def __enter__(self) -> "BackgroundServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError(f"the dashboard's server did not start on {self.url}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.should_exit = True
        self.thread.join(30)


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])
