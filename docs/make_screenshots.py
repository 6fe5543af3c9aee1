"""Make the README's screenshots: a report section and the live Dask dashboard.

    .venv/bin/python docs/make_screenshots.py

Runs the task-performance demo and writes its report, runs the synthetic job long enough to
watch it, and photographs both with the tests' headless chromium (``tests/browser.py``; needs
``apt-get install chromium``). The PNGs (``docs/report.png``, ``docs/dashboard.png``) are
scaled down and reduced to a palette so they stay small in the repository.
"""

from __future__ import annotations

import io
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parent
sys.path.insert(0, str(DOCS.parent / "tests"))
from browser import chromium  # noqa: E402  (the one browser set-up, shared with the tests)

WIDTH = 1000  # pixels of the saved images
COLOURS = 96


def save_small(png: bytes, path: Path) -> None:
    """Scale to WIDTH and reduce to a palette: a few dozen kilobytes."""
    image = Image.open(io.BytesIO(png)).convert("RGB")
    height = round(image.height * WIDTH / image.width)
    small = image.resize((WIDTH, height), Image.LANCZOS).quantize(COLOURS, dither=Image.NONE)
    small.save(path, optimize=True)
    print(f"{path} ({path.stat().st_size // 1024} KiB)")


def job(module: str, *args: str, cwd: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", module, *args, "--no-progress"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        **kwargs,
    )


def report_screenshot(work: Path) -> None:
    run = job("nmbatch.task_performance", "--demo", "--output", "out", cwd=work)
    run.communicate(timeout=900)
    cache_dir = work / "out" / "task_performance"
    subprocess.run([sys.executable, "-m", "nmbatch", "report", str(cache_dir)], check=True)
    with chromium(offline=True, width=1100, height=900) as context:
        page = context.new_page()
        page.goto((cache_dir / "report.html").as_uri())
        section = page.locator("section", has_text="psychometric curves").first
        section.locator("canvas").first.wait_for(state="visible")
        save_small(section.screenshot(), DOCS / "report.png")


def dashboard_screenshot(work: Path) -> None:
    args = ["--output", "out", "--items", "2000", "--set", "work_ms=1000", "--workers", "2"]
    run = job("nmbatch.synthetic", *args, "--dashboard-address", "127.0.0.1:0", cwd=work)
    try:
        link = None
        while link is None:
            ready, _, _ = select.select([run.stdout], [], [], 300)
            line = run.stdout.readline() if ready else ""
            if not line:
                raise RuntimeError("the synthetic job ended before it printed its dashboard")
            found = re.search(r"Dask dashboard: (\S+)", line)
            link = found.group(1) if found else None
        with chromium(width=1280, height=800) as context:
            page = context.new_page()
            page.goto(link)
            page.locator("canvas").nth(5).wait_for(state="visible", timeout=60_000)
            page.wait_for_timeout(8000)  # let the task stream fill
            save_small(page.screenshot(), DOCS / "dashboard.png")
    finally:
        os.kill(run.pid, signal.SIGTERM)
        run.communicate(timeout=180)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="nmbatch-screenshots-") as folder:
        report_screenshot(Path(folder))
        dashboard_screenshot(Path(folder))


if __name__ == "__main__":
    main()
