"""Debian's headless Chromium driven by Selenium through Debian's chromedriver: one browser per
test module (starting one costs seconds), a clean page and its own screenshot folder per test.

Screenshots go to `test-artifacts/browser/<test name>/` under the project root (git-ignored),
numbered in the order they were taken, for a person to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.wait import WebDriverWait

ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or shutil.which("chromedriver", path="/usr/bin")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
# A module whose tests drive the browser: `pytestmark = BROWSER` (end to end: a real browser).
BROWSER = [
    pytest.mark.e2e,
    pytest.mark.browser,
    pytest.mark.skipif(
        CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium; .ci/run does)"
    ),
    pytest.mark.skipif(
        CHROMEDRIVER is None,
        reason="Debian's chromedriver is not installed (apt-get install chromium-driver; .ci/run does)",
    ),
]


def in_a_browser(test: Callable[..., None]) -> Callable[..., None]:
    """The BROWSER marks on one test of a module whose other tests need no browser."""
    for mark in BROWSER:
        test = mark(test)
    return test


def chrome(profile: Path, *arguments: str) -> webdriver.Chrome:
    """A headless Chromium in English with its console kept; `arguments` add to the defaults."""
    assert CHROMIUM is not None and CHROMEDRIVER is not None
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--lang=en-US",
        "--window-size=1000,800",
        f"--user-data-dir={profile}",
        *arguments,
    ):
        options.add_argument(argument)
    options.add_experimental_option("prefs", {"intl.accept_languages": "en-US,en"})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(profile.parent / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(60)
    return driver


@dataclass
class Browser:
    """The driver, the console messages read so far and the screenshots taken."""

    driver: webdriver.Chrome
    folder: Path
    console: list[dict] = field(default_factory=list)
    shots: int = 0

    def open(self, url: str) -> None:
        self.driver.get(url)
        self._loaded()

    def submit(self, button: WebElement) -> None:
        """Click a form's button and wait for the page it answers with."""
        page = self.find("html")
        button.click()
        WebDriverWait(self.driver, 30).until(staleness_of(page))
        self._loaded()

    def _loaded(self) -> None:
        WebDriverWait(self.driver, 30).until(
            lambda driver: driver.execute_script("return document.readyState") == "complete"
        )
        self.console += self.driver.get_log("browser")

    def find(self, selector: str) -> WebElement:
        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def text(self) -> str:
        return " ".join(self.find("body").text.split())

    def heading(self) -> str:
        return self.find("h1").text.strip()

    def screenshot(self, step: str, width: int = 1000, longest: int = 5000) -> None:
        """The whole page, however long (up to `longest` pixels), as NN-step.png."""
        height = self.driver.execute_script("return document.documentElement.scrollHeight")
        self.driver.set_window_size(width, max(800, min(int(height) + 20, longest)))
        self.driver.execute_script("window.scrollTo(0, 0)")
        self.shots += 1
        self.driver.save_screenshot(str(self.folder / f"{self.shots:02d}-{step}.png"))

    def csp_violations(self) -> list[str]:
        self.console += self.driver.get_log("browser")
        return [entry["message"] for entry in self.console if "Content Security Policy" in entry["message"]]


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    """One browser for the module's tests."""
    driver = chrome(tmp_path_factory.mktemp("chromium") / "profile")
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: webdriver.Chrome, request: pytest.FixtureRequest) -> Iterator[Browser]:
    """The module's browser for one test: no cookie or console message of an earlier test, and
    a screenshot folder of the test's own."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "-", request.node.name).strip("-")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})  # every site's, any port
    chromium.get_log("browser")  # read, so this test's console starts empty
    chromium.set_window_size(1000, 800)
    yield Browser(chromium, folder)
    chromium.get("about:blank")
