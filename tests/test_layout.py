"""The package's shape: parts import only the parts before them, entry points hold no SQL,
and a wheel carries everything a command needs."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE

PACKAGE = ROOT / "newsletter"
# Each part and the parts it may import (besides the top-level settings, errors, logs, paths).
ALLOWED = {
    "store": set(),
    "ingest": {"store"},
    "subscribers": {"store"},
    "editions": {"store", "ingest", "subscribers"},
    "metrics": {"store", "editions"},
    "sending": {"store", "editions", "subscribers", "metrics"},
    "syndication": {"store", "ingest", "editions"},
    "services": {"store", "ingest", "subscribers", "editions", "metrics", "sending", "syndication"},
    "cli": {
        "services",
        "store",
        "ingest",
        "subscribers",
        "editions",
        "sending",
        "syndication",
        "scheduler",
        "web",
        "metrics",
    },
    "web": {"services", "store", "subscribers", "editions", "sending", "ingest", "metrics"},
    "scheduler": {"services", "store"},
}


def imports(path: Path) -> set[str]:
    """Every module a file imports, `from package import module` counted as package.module."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path.relative_to(ROOT)}: relative import"
            assert node.module
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def part_of(module: str) -> str | None:
    """The part (store, ingest, ...) a module of this package belongs to, if any."""
    names = module.split(".")
    if names[0] != "newsletter" or len(names) < 2 or not (PACKAGE / names[1]).is_dir():
        return None
    return names[1]


def test_parts_import_only_the_parts_before_them() -> None:
    for part, allowed in ALLOWED.items():
        for path in (PACKAGE / part).rglob("*.py"):
            for module in imports(path):
                other = part_of(module)
                assert other in (None, part, *allowed), f"{path.relative_to(ROOT)} imports {module}"
    for path in PACKAGE.glob("*.py"):  # settings, errors, logs, paths: below every part
        if path.name != "__main__.py":
            assert not {part_of(m) for m in imports(path)} - {None}, f"{path.name} imports a part"


def test_the_command_line_runs_no_sql() -> None:
    """Entry points call services and format what comes back."""
    for path in [*(PACKAGE / "cli").rglob("*.py"), *(PACKAGE / "web").rglob("*.py")]:
        for module in imports(path):
            assert not module.startswith("sqlalchemy"), f"{path.relative_to(ROOT)} imports {module}"
            assert module not in (
                "newsletter.store.db",
                "newsletter.store.models",
                "newsletter.store.ledger",
            ), f"{path.relative_to(ROOT)} imports {module}"


def test_no_test_module_imports_another() -> None:
    """What tests share lives in tests/support/; a test module is nobody's library."""
    found = []
    for path in sorted((ROOT / "tests").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found += [f"{path.name}: {name}" for name in names if name.startswith("tests.test_")]
    assert not found, found


@pytest.mark.e2e
def test_an_installed_wheel_renders_a_preview_with_its_templates(tmp_path) -> None:
    """A wheel built, installed in a fresh virtual environment and run as its `newsletter`
    script: only there is the package what the wheel carries (the templates included) rather
    than this checkout, which every in-process test imports."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    for folder in ("newsletter", "templates"):
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = (tmp_path / "dist").glob("newsletter-*.whl")
    fresh = tmp_path / "fresh"
    venv.create(fresh, with_pip=True)
    python = fresh / "bin" / "python"
    installed = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], capture_output=True, text=True
    )
    assert installed.returncode == 0, installed.stderr
    # The libraries come from the project's environment; the package only from the wheel.
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    libraries = next(p for p in sys.path if p.endswith("site-packages"))
    Path(site, "project-libraries.pth").write_text(libraries + "\n")
    work = tmp_path / "work"
    work.mkdir()
    config = work / "newsletter.toml"
    config.write_text(
        'database_url = "sqlite:///store.db"\ntimezone = "Europe/Brussels"\n'
        f'[[feeds]]\nurl = "{SAMPLE / "site.xml"}"\n'
    )
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "XDG_DATA_HOME": str(work / "data"),
        "NEWSLETTER_CONFIG": str(config),
    }

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(fresh / "bin" / "newsletter"), *args],
            env=env,
            cwd=work,
            capture_output=True,
            text=True,
            timeout=120,
        )

    where = subprocess.run(
        [
            str(python),
            "-c",
            "from newsletter.settings import load_settings; print(load_settings().templates_path())",
        ],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
    ).stdout.strip()
    assert where.startswith(site) and Path(where, "email", "digest.html").is_file()
    assert run("fetch").returncode == 0
    preview = run("preview", "--category", "politics", "--at", "2026-11-20T12:00")
    assert preview.returncode == 0, preview.stderr
    assert "<html" in preview.stdout and 'style="' in preview.stdout  # rendered, CSS inlined
    assert "Unsubscribe" in preview.stdout or "unsubscribe" in preview.stdout
    assert (work / "store.db").is_file()  # relative to the settings file, not to home
