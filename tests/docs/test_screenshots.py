"""The site as a reader sees it: Debian's Chromium (headless) takes screenshots of the home
page, an API page and an e2e page at desktop and phone widths; each must show a rendered page
(not blank, not one flat colour, text in the top and the middle of the screen). The PNGs are
kept in artifacts/docs-screenshots/ for people to look at."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tools import locate
from tools.docs import build

pytestmark = pytest.mark.docs

OUT = locate.artifacts() / "docs-screenshots"
WIDTHS = {"desktop": (1280, 900), "phone": (390, 844)}


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        if os.environ.get("MOCK_ACCEL_DOCS_BUILT"):
            pytest.fail("chromium is not installed (it is in APT_PACKAGES: run make deps)")
        pytest.skip("chromium is not installed")
    return found


def screenshot(page: Path, out: Path, size: tuple[int, int]) -> Path:
    with tempfile.TemporaryDirectory() as profile:
        cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
               "--no-first-run", f"--user-data-dir={profile}", "--virtual-time-budget=3000",
               f"--window-size={size[0]},{size[1]}", f"--screenshot={out}", page.as_uri()]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0 and out.exists(), result.stderr[-2000:]
    return out


def ink(image, box: tuple[int, int, int, int]) -> float:
    """Share of the pixels in `box` that differ from that region's most common colour."""
    region = image.crop(box).convert("RGB")
    colours = region.getcolors(region.width * region.height)
    background = max(colours)[0]
    return 1 - background / (region.width * region.height)


def e2e_page() -> str:
    notebooks = [nb for nb in build.source_notebooks() if build.needs_cluster(nb)]
    if not notebooks:
        pytest.skip("no e2e notebook in nbs/")
    return build.page_of(notebooks[0])


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("which", ["home", "api", "module", "e2e"])
def test_page_renders(site, which, width):
    from PIL import Image

    name = {"home": "index.html", "api": "api.html", "module": "sysfs.html"}.get(which) \
        or e2e_page()
    OUT.mkdir(parents=True, exist_ok=True)
    size = WIDTHS[width]
    png = screenshot(site / name, OUT / f"{Path(name).stem}-{width}.png", size)
    with Image.open(png) as image:
        assert image.size == size
        colours = image.convert("RGB").getcolors(size[0] * size[1])
        assert colours is not None and len(colours) > 50, f"{png}: hardly any colours"
        w, h = size
        assert ink(image, (0, 0, w, h)) > 0.03, f"{png} is blank"
        assert ink(image, (0, 0, w, h // 4)) > 0.01, f"{png}: nothing at the top"
        assert ink(image, (0, h // 3, w, 2 * h // 3)) > 0.01, f"{png}: nothing in the middle"


def test_search_finds_pages_in_the_browser(site):
    """Sphinx's search runs in the page (searchindex.js): Chromium loads search.html with a
    query, and the DOM after the scripts ran lists matching pages."""
    with tempfile.TemporaryDirectory() as profile:
        url = (site / "search.html").as_uri() + "?q=counter+set"
        result = subprocess.run(
            [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             f"--user-data-dir={profile}", "--virtual-time-budget=8000", "--dump-dom", url],
            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    found = re.search(r"found (\d+) pages? matching", dom)
    assert found and int(found[1]) >= 2, dom[-3000:]
    assert 'href="dra_model.html' in dom
