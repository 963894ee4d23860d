"""axe-core (from npm) in Debian's headless Chromium: the WCAG violations of an HTML page.

axe-core lives in tests/.node/ (git-ignored). `python3 tests/axe_runner.py install` puts it there;
.ci/run does that once, and the accessibility tests do it themselves when it is missing.
Standard library only, so .ci/run can call it before the virtualenv exists.
"""

from __future__ import annotations

import fcntl
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

AXE_VERSION = "4.14.1"
NODE_DIR = Path(__file__).resolve().parent / ".node"
AXE_JS = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
WCAG_TAGS = ("wcag2a", "wcag2aa", "wcag21a", "wcag21aa")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NPM = shutil.which("npm")

# Runs after the page has loaded; the result goes into the DOM, which --dump-dom prints.
_RUN = """
<script src="%(axe)s"></script>
<script>
(function () {
  function report(value) {
    var pre = document.createElement("pre");
    pre.id = "axe-result";
    pre.textContent = JSON.stringify(value);
    document.body.appendChild(pre);
  }
  axe.run(document, {runOnly: {type: "tag", values: %(tags)s}, resultTypes: ["violations"]}).then(
    function (result) {
      report({version: axe.version, violations: result.violations.map(function (rule) {
        return {id: rule.id, impact: rule.impact, help: rule.help, nodes: rule.nodes.map(function (node) {
          return {target: node.target.join(" "), html: node.html, summary: node.failureSummary};
        })};
      })});
    },
    function (error) { report({error: String(error)}); }
  );
})();
</script>
"""
_RESULT = re.compile(r'<pre id="axe-result">(.*?)</pre>', re.S)


class AxeUnavailable(RuntimeError):
    """axe-core is not installed and npm is not there to install it."""


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
    """axe-core AXE_VERSION in tests/.node/, installed once; a lock keeps parallel runs apart."""
    NODE_DIR.mkdir(exist_ok=True)
    with (NODE_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed_version() == AXE_VERSION:
            return AXE_JS
        if NPM is None:
            raise AxeUnavailable(f"axe-core is not in {NODE_DIR} and npm is not installed to fetch it")
        quiet = ["--no-save", "--no-package-lock", "--no-audit", "--no-fund"]
        done = subprocess.run(
            [NPM, "install", "--prefix", str(NODE_DIR), *quiet, f"axe-core@{AXE_VERSION}"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0 or installed_version() != AXE_VERSION:
            raise RuntimeError(f"npm install axe-core@{AXE_VERSION} failed: {done.stderr.strip()[-2000:]}")
    return AXE_JS


def violations(page_html: str, *, dark: bool = False, width: int = 1000) -> list[Violation]:
    """Load the page in headless Chromium (offline: every host name fails to resolve), run axe."""
    if CHROMIUM is None:
        raise AxeUnavailable("Debian's chromium is not installed")
    axe = install()
    script = _RUN % {"axe": axe.as_uri(), "tags": json.dumps(list(WCAG_TAGS))}
    body_end = page_html.rfind("</body>")
    page = page_html[:body_end] + script + page_html[body_end:] if body_end >= 0 else page_html + script
    with tempfile.TemporaryDirectory(prefix="axe-") as folder:
        path = Path(folder) / "page.html"
        path.write_text(page, encoding="utf-8")
        command = [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={Path(folder) / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            f"--window-size={width},1600",
            # the page's own timers (axe's) run before the DOM is printed
            "--virtual-time-budget=60000",
            "--dump-dom",
        ]
        if dark:
            command.append("--force-dark-mode")  # prefers-color-scheme: dark
        done = subprocess.run(
            [*command, path.as_uri()], capture_output=True, text=True, timeout=120, check=False
        )
    found = _RESULT.search(done.stdout)
    if found is None:
        raise RuntimeError(f"axe gave no result (chromium exit {done.returncode}): {done.stderr[-2000:]}")
    result = json.loads(html.unescape(found.group(1)))
    if "error" in result:
        raise RuntimeError(f"axe failed: {result['error']}")
    return [Violation(v["id"], v["impact"], v["help"], v["nodes"]) for v in result["violations"]]


if __name__ == "__main__":
    if sys.argv[1:] != ["install"]:
        sys.exit("usage: python3 tests/axe_runner.py install")
    print(f"axe-core {AXE_VERSION} in {install().parent}")
