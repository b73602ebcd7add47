"""What several test modules need to drive the real program: a free loopback port, a
bounded wait, and `crawler serve` started and stopped by its PID."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return True
        except (OSError, httpx.TransportError):  # not listening yet
            pass
        time.sleep(0.2)
    return False


@contextmanager
def serving(config: Path, log: Path, *, command: str = "serve",
            options: Sequence[str] = ()) -> Iterator[str]:
    """`crawler serve` (or `command`: `run` for the daemon) on 127.0.0.1 for this
    feeds.yaml, with these global `options`, its output in `log`; yields the base URL once
    /healthz answers. Stopped with SIGTERM, which must end it cleanly."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with log.open("w", encoding="utf-8") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "crawler", "--config", str(config), *options, command,
             "--host", "127.0.0.1", "--port", str(port)], stdout=out, stderr=subprocess.STDOUT)
        try:
            def up() -> bool:
                if process.poll() is not None:
                    raise AssertionError(f"crawler {command} exited with {process.returncode}:\n"
                                         + log.read_text(encoding="utf-8")[-3000:])
                with urllib.request.urlopen(f"{base}/healthz", timeout=5) as reply:
                    return bool(reply.status == 200)

            assert wait_until(up, 30), \
                f"crawler {command} did not come up:\n" + log.read_text(encoding="utf-8")[-3000:]
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                code = process.wait(timeout=30)
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait(timeout=10)
        assert code == 0, f"crawler {command} exited with {code} on SIGTERM"
