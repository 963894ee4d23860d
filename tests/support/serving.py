"""`newsletter serve` as a process of its own on a free loopback port, and a one-click POST to
it: what the load benchmarks and the fault-injection run drive."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def serve_process(
    workdir: Path, database_url: str, key: str, workers: int = 2, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    """`newsletter serve --workers N` once it answers /healthz, and its address; its log in
    serve.log. `env` adds settings (NEWSLETTER_*) to the clean environment it starts with."""
    config = workdir / "serve.toml"
    config.write_text(f'database_url = "{database_url}"\noutbox_dir = "{workdir / "outbox"}"\n')
    clean = {name: value for name, value in os.environ.items() if not name.startswith("NEWSLETTER_")}
    with (workdir / "serve.log").open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "newsletter",
                "serve",
                "--config",
                str(config),
                "--port",
                "0",
                "--workers",
                str(workers),
            ],
            env={**clean, **(env or {}), "NEWSLETTER_SECRET_KEY": key, "PYTHONUNBUFFERED": "1"},
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
    assert server.stdout is not None
    first = server.stdout.readline()
    if not first.startswith("serving"):
        server.kill()
        raise RuntimeError(f"newsletter serve did not start: {(workdir / 'serve.log').read_text()[-500:]}")
    address = first.split()[-1]
    for _attempt in range(100):
        try:
            with urllib.request.urlopen(address + "/healthz", timeout=5) as answer:
                if answer.status == 200:
                    return server, address
        except OSError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("newsletter serve did not answer /healthz")


def one_click(url: str, timeout: float = 10) -> int:
    """RFC 8058's POST to a List-Unsubscribe URL; the answer's status."""
    asked = urllib.request.Request(url, data=b"List-Unsubscribe=One-Click", method="POST")
    asked.add_header("Content-Type", "application/x-www-form-urlencoded")
    try:
        with urllib.request.urlopen(asked, timeout=timeout) as answer:
            return answer.status
    except urllib.error.HTTPError as exc:
        return exc.code
