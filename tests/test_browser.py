"""The preview as a reader's browser renders it: headless Chromium (Debian's `chromium`)."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from PIL import Image

from newsletter.editions.compose import Composer
from newsletter.editions.preview import preview
from tests.conftest import WEEKLY_NOV_23

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
    ),
]


def screenshot(html_path, png_path, tmp_path, width: int = 1000) -> Image.Image:
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={width},1600",
            f"--screenshot={png_path}",
            html_path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=90,
    )
    return Image.open(png_path).convert("RGB")


def test_preview_renders_a_600px_newsletter(newsroom, tmp_path) -> None:
    """End to end: the width a real browser lays the digest out at, measured on its pixels."""
    composer = Composer(newsroom.settings.templates_path())
    with newsroom.factory() as session:
        result = preview(
            session,
            newsroom.settings,
            composer,
            "weekly",
            WEEKLY_NOV_23,  # the slot previewed
            categories=["politics", "health"],
        )
    page = tmp_path / "preview.html"
    page.write_text(result.html, encoding="utf-8")
    image = screenshot(page, tmp_path / "preview.png", tmp_path)
    colours = image.getcolors(maxcolors=1_000_000)
    assert colours is not None and len(colours) > 50, "the page is blank"
    # the white content column, measured across a row inside it
    y = 200  # below the masthead (and the "view in your browser" line above it)
    row = [image.getpixel((x, y)) for x in range(image.width)]
    white = [x for x, pixel in enumerate(row) if pixel == (255, 255, 255)]
    assert white, "no content column found"
    width = white[-1] - white[0] + 1
    assert 590 <= width <= 610, width
    # centred on the grey page
    assert abs((white[0] + white[-1]) / 2 - image.width / 2) < 10
    assert image.getpixel((10, y)) != (255, 255, 255)
