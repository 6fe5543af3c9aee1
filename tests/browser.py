"""Debian's chromium driven by Playwright: the one headless browser of the tests and docs/.

Playwright never downloads a browser here: it starts ``/usr/bin/chromium`` (``apt-get install
chromium``, as ``.ci/run`` does) with a fresh profile and the flags that keep it from calling
home, which would hang on a closed network.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--no-sandbox",  # chromium refuses to run as root with its sandbox
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "test-artifacts"  # screenshots kept with the test output (git ignores it)
MIN_COLOURS = 16  # a drawn plot (axes, text, glyphs) has many; a blank region has one


def browser_missing() -> str | None:
    """Why no headless browser can run here, or None when one can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[test]')"
    if not CHROMIUM.is_file() or shutil.which(str(CHROMIUM)) is None:
        return f"{CHROMIUM} is missing (apt-get install chromium; .ci/run installs it)"
    return None


@contextmanager
def chromium(offline: bool = False, width: int = 1280, height: int = 900) -> Iterator:
    """A Playwright browser context of headless chromium; ``offline`` cuts its network."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw, tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            headless=True,
            args=FLAGS,
            offline=offline,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


def distinct_colours(png: bytes) -> int:
    """How many colours a screenshot has (1 for a blank region)."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB")
    return len(image.getcolors(maxcolors=1 << 24) or [])


def artifact(name: str) -> Path:
    """A path under test-artifacts/ for a screenshot, its folder created."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / name


@dataclass
class ReportView:
    """What a person would see of a report file, and what went wrong on the way."""

    text: str  # the page's visible text
    n_plots: int
    blank_plots: list[str]  # labels of plots whose screenshot has (almost) one colour
    errors: list[str]  # console errors and uncaught exceptions
    requests: list[str]  # every URL the page tried to load other than the file itself


def open_report(path: Path, screenshot: str) -> ReportView:
    """Open a report file in offline chromium, screenshot the page and each plot."""
    url = path.resolve().as_uri()
    errors: list[str] = []
    requests: list[str] = []

    def route(request_route) -> None:
        if request_route.request.url == url:
            request_route.continue_()
        else:
            requests.append(request_route.request.url)
            request_route.abort()

    with chromium(offline=True) as context:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.route("**/*", route)
        page.goto(url, wait_until="load")
        plots = page.locator("figure.plot")
        blank = []
        for i in range(plots.count()):
            plot = plots.nth(i)
            plot.locator("canvas").first.wait_for(state="visible", timeout=30_000)
            if distinct_colours(plot.screenshot()) < MIN_COLOURS:
                blank.append(plot.get_attribute("aria-label") or f"plot {i}")
        page.screenshot(path=artifact(screenshot), full_page=True)
        return ReportView(page.inner_text("body"), plots.count(), blank, errors, requests)
