"""Fixtures of the docs tests. The site tests read _docs/ as `make docs` left it: `make
test-docs` builds it and then runs them with MOCK_ACCEL_DOCS_BUILT=1; in the main pytest run
they are skipped with that reason (a site left from an earlier build may be stale). The
examples test uses the local control plane (mock_accel.cluster)."""
from __future__ import annotations

import os
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tools.docs import build

SITE = build.SITE


BLOCKS = {"p", "div", "dt", "dd", "li", "tr", "td", "th", "pre", "h1", "h2", "h3", "h4", "section"}


class Page(HTMLParser):
    """What the tests look at in one HTML page: links, images, ids, the article's text."""

    def __init__(self, path: Path):
        super().__init__(convert_charrefs=True)
        self.path = path
        self.links: list[str] = []
        self.images: list[str] = []
        self.assets: list[str] = []
        self.ids: set[str] = set()
        self.h1: list[str] = []
        self.tables = 0
        self._depth = 0  # inside <article>
        self._in_h1 = False
        self._skip = 0  # inside <script>/<style>
        self.text_parts: list[str] = []
        self.feed(path.read_text())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
        elif tag == "img" and attrs.get("src"):
            self.images.append(attrs["src"])
        elif tag == "script" and attrs.get("src"):
            self.assets.append(attrs["src"])
        elif tag == "link" and attrs.get("rel") == "stylesheet":
            self.assets.append(attrs["href"])
        if tag in ("script", "style"):
            self._skip += 1
        if tag == "article":
            self._depth += 1
        if tag == "h1" and self._depth:
            self._in_h1 = True
            self.h1.append("")
        if tag == "table" and self._depth:
            self.tables += 1

    def handle_endtag(self, tag):
        if tag in BLOCKS and self._depth:
            self.text_parts.append("\n")
        if tag in ("script", "style"):
            self._skip -= 1
        if tag == "article":
            self._depth -= 1
        if tag == "h1":
            self._in_h1 = False

    def handle_data(self, data):
        if self._depth and not self._skip:
            self.text_parts.append(data)
            if self._in_h1:
                self.h1[-1] += data

    @property
    def text(self) -> str:
        return "".join(self.text_parts)


@pytest.fixture(scope="session")
def site() -> Path:
    if not os.environ.get("MOCK_ACCEL_DOCS_BUILT"):
        pytest.skip("checks the built site: `make test-docs` builds it, then runs these")
    if not (SITE / "index.html").exists():
        pytest.fail(f"{SITE} has no index.html although `make docs` ran")
    return SITE


@pytest.fixture(scope="session")
def pages(site: Path) -> dict[str, Page]:
    return {str(p.relative_to(site)): Page(p) for p in sorted(site.rglob("*.html"))}
