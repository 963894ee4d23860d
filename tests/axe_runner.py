"""axe-core in a browser the caller drives: the WCAG violations of an HTML page.

axe-core lives in tests/.node/ (git-ignored): `python3 tests/axe_runner.py install` fetches the
pinned release from the npm registry over HTTPS and checks it against its published digest, so
neither npm nor node is needed. .ci/run does that once; the accessibility tests do it themselves
when it is missing. Standard library only, so .ci/run can call it before the virtualenv exists.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import io
import json
import sys
import tarfile
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

AXE_VERSION = "4.14.1"
AXE_TARBALL = f"https://registry.npmjs.org/axe-core/-/axe-core-{AXE_VERSION}.tgz"
# The registry's `dist.integrity` of that release: what is fetched must be exactly it.
AXE_SHA512 = "FHfa+lmNjQZfJz1q8wKqIDwC6DExcHt/pkjNQb09a3NPjCKg2rhu5qb2S4r76ASyFNNtuFooJpZe37OgudVGtQ=="
NODE_DIR = Path(__file__).resolve().parent / ".node"
AXE_JS = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")

# Runs in the page once axe is loaded; the driver waits for `done`.
_RUN = """
var done = arguments[arguments.length - 1];
axe.run(document, {runOnly: {type: "tag", values: arguments[0]}, resultTypes: ["violations"]}).then(
  function (result) {
    done({violations: result.violations.map(function (rule) {
      return {id: rule.id, impact: rule.impact, help: rule.help, nodes: rule.nodes.map(function (node) {
        return {target: node.target.join(" "), html: node.html, summary: node.failureSummary};
      })};
    })});
  },
  function (error) { done({error: String(error)}); }
);
"""


class Driver(Protocol):
    """What of a Selenium Chrome driver this uses (Selenium itself is not needed to install)."""

    def execute_cdp_cmd(self, cmd: str, cmd_args: dict) -> Any: ...
    def set_window_size(self, width: int, height: int) -> Any: ...
    def set_script_timeout(self, time_to_wait: float) -> Any: ...
    def get(self, url: str) -> Any: ...
    def execute_script(self, script: str, *args: Any) -> Any: ...
    def execute_async_script(self, script: str, *args: Any) -> Any: ...


@dataclass(frozen=True)
class Violation:
    rule: str
    impact: str | None
    help: str
    nodes: list[dict[str, str]]

    def __str__(self) -> str:
        first = self.nodes[0]
        summary = " ".join(first["summary"].split())
        return (
            f"{self.rule} ({self.impact}, {len(self.nodes)}x): {self.help}; e.g. {first['target']}: {summary}"
        )


def installed_version() -> str | None:
    package = AXE_JS.parent / "package.json"
    if not AXE_JS.is_file() or not package.is_file():
        return None
    version = json.loads(package.read_text(encoding="utf-8")).get("version")
    return version if isinstance(version, str) else None


def install() -> Path:
    """axe-core AXE_VERSION in tests/.node/, fetched once; a lock keeps parallel runs apart."""
    NODE_DIR.mkdir(exist_ok=True)
    with (NODE_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version() == AXE_VERSION:
            return AXE_JS
        with urllib.request.urlopen(AXE_TARBALL, timeout=120) as answer:
            tarball = answer.read()
        digest = base64.b64encode(hashlib.sha512(tarball).digest()).decode()
        if digest != AXE_SHA512:
            raise RuntimeError(f"{AXE_TARBALL} is not the published release (sha512 {digest})")
        AXE_JS.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as archive:
            for name in ("axe.min.js", "package.json"):  # package.json last: it marks the install done
                member = archive.extractfile(f"package/{name}")
                assert member is not None
                (AXE_JS.parent / name).write_bytes(member.read())
    return AXE_JS


def violations(driver: Driver, page_html: str, *, dark: bool = False, width: int = 1000) -> list[Violation]:
    """Load the page in the driver's browser (light or dark colour scheme), run axe on it."""
    axe = install().read_text(encoding="utf-8")
    scheme = {"name": "prefers-color-scheme", "value": "dark" if dark else "light"}
    driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": [scheme]})
    driver.set_window_size(width, 1600)
    driver.set_script_timeout(60)
    with tempfile.TemporaryDirectory(prefix="axe-") as folder:
        path = Path(folder) / "page.html"
        path.write_text(page_html, encoding="utf-8")
        driver.get(path.as_uri())
        driver.execute_script(axe)
        result = driver.execute_async_script(_RUN, list(WCAG_TAGS))
    if "error" in result:
        raise RuntimeError(f"axe failed: {result['error']}")
    return [Violation(v["id"], v["impact"], v["help"], v["nodes"]) for v in result["violations"]]


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python3 tests/axe_runner.py install")
    print(f"axe-core {AXE_VERSION} in {install().parent}")
