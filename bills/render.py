"""HTML -> PDF rendering of bill documents with WeasyPrint.

* ``Renderer`` parses the stylesheet once (one ``weasyprint.CSS``) and keeps one
  ``FontConfiguration`` (fontconfig + Pango font map) for all the documents it renders, and uses a
  CJK font subset made once (``bills.fonts``) instead of the 20 MB system collection.
* ``render_pdf(doc)`` uses one lazily created ``Renderer`` per process.
* ``render_many(docs, workers, max_tasks_per_child)`` renders in worker processes that are
  recycled after ``max_tasks_per_child`` bills, so memory stays flat over long runs.
* ``render_pdf_plain(doc)`` is the naive approach (fresh HTML -> PDF with inline CSS and the system
  font, new font configuration every time), kept for the benchmark's comparison.

Security: templates autoescape, and every fetch goes through ``AssetFetcher``, which refuses any URL
that is not a file inside ``bills/assets/`` (or one of the font subset files the renderer itself made),
or one of the current document's own charts, held in memory under ``wattbill-chart:`` URLs (charts
are SVG images rather than inline SVG: HTML parsing and styling of their nodes was a third of the time).
"""

from __future__ import annotations

import atexit
import collections
import hashlib
import logging
import mimetypes
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from urllib.request import url2pathname

import jinja2

from wattbill.errors import MissingExtra, WattbillError

try:
    from weasyprint import CSS, HTML
    from weasyprint.text.fonts import FontConfiguration
    from weasyprint.urls import URLFetcher, URLFetcherResponse
except ImportError as exc:  # the [pdf] extra is not installed
    raise MissingExtra("PDF rendering (wattbill.bills.render)", "weasyprint", "pdf") from exc

from wattbill.bills import fonts as _fonts
from wattbill.bills.document import BillDocument
from wattbill.bills.i18n import translator

PACKAGE_DIR = Path(__file__).parent
ASSETS_DIR = (PACKAGE_DIR / "assets").resolve()
TEMPLATES_DIR = PACKAGE_DIR / "templates"
ASSETS_URL = ASSETS_DIR.as_uri() + "/"
DEFAULT_PDF_VARIANT = "pdf/ua-1"
CHART_SCHEME = "wattbill-chart"

log = logging.getLogger(__name__)


class RefusedURL(WattbillError, ValueError):
    """A bill tried to fetch something outside the package's assets."""


class AssetFetcher(URLFetcher):
    """Serves files under ``bills/assets/`` (and explicitly allowed files); refuses everything else:
    http(s), data:, other files, path traversal, symlinks pointing out of the folder."""

    def __init__(self, allowed_files: Iterable[Path] = ()):
        super().__init__(allowed_protocols={"file"}, allow_redirects=False, fail_on_errors=False)
        self.allowed_files = frozenset(Path(p).resolve() for p in allowed_files)
        self.refused: collections.deque[str] = collections.deque(maxlen=50)
        self.memory: dict[str, bytes] = {}  # the current document's charts

    def _check(self, url: str) -> Path:
        parts = urlsplit(url)
        if parts.scheme != "file" or parts.netloc not in ("", "localhost"):
            raise RefusedURL(f"refused URL (not a package asset): {url[:200]}")
        path = Path(url2pathname(parts.path)).resolve()
        if path in self.allowed_files or path.is_relative_to(ASSETS_DIR):
            if path.is_file():
                return path
        raise RefusedURL(f"refused URL (not a package asset): {url[:200]}")

    def fetch(self, url, headers=None):
        if url in self.memory:
            return URLFetcherResponse(url, self.memory[url], {"Content-Type": "image/svg+xml"})
        try:
            path = self._check(url)
        except RefusedURL:
            self.refused.append(url[:200])
            raise
        ctype = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        if path.suffix in (".otf", ".ttf"):
            ctype = "font/" + path.suffix[1:]
        return URLFetcherResponse(path.as_uri(), path.read_bytes(), {"Content-Type": ctype})


_ENV: jinja2.Environment | None = None


def environment() -> jinja2.Environment:
    global _ENV
    if _ENV is None:
        _ENV = jinja2.Environment(
            loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
            autoescape=True,  # every template, whatever its extension
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
    return _ENV


def render_html(doc: BillDocument, inline_css: str | None = None,
                resources: dict[str, bytes] | None = None) -> str:
    """The bill's HTML. Charts are referenced as ``wattbill-chart:`` URLs whose SVG bytes are put in
    ``resources`` (give the dict to ``AssetFetcher.memory``); without ``resources`` they are inlined
    as data: URLs (for previews in a browser; the renderer never fetches data: URLs)."""
    template = environment().get_template("bill.html.j2")

    def chart(name: str, svg: str) -> str:
        data = str(svg).encode("utf-8")
        if resources is None:
            import base64

            return "data:image/svg+xml;base64," + base64.b64encode(data).decode("ascii")
        url = f"{CHART_SCHEME}:{name}-{hashlib.sha256(data).hexdigest()[:16]}.svg"
        resources[url] = data
        return url

    return template.render(doc=doc, _=translator(doc.language), inline_css=inline_css, chart=chart)


def _identifier(doc: BillDocument) -> bytes:
    # stable across runs: identical bills give identical PDFs (idempotent bill runs)
    return hashlib.sha256(f"{doc.customer_id}|{doc.year}|{doc.version}|{doc.language}".encode()).hexdigest()[
        :32
    ].encode()


class Renderer:
    """Renders many documents, reusing the parsed CSS, the font configuration and the font subset.

    subset_fonts: use the CJK subset (``bills.fonts``); False renders with the system font only.
    pdf_variant: "pdf/ua-1" (default: tagged, with language and title, for screen readers) or None.
    """

    def __init__(self, *, subset_fonts: bool = True, pdf_variant: str | None = DEFAULT_PDF_VARIANT,
                 font_cache: Path | None = None):
        self.pdf_variant = pdf_variant
        self.font_files = _fonts.subset_fonts(font_cache) if subset_fonts else {}
        self.fetcher = AssetFetcher(self.font_files.values())
        self.font_config = FontConfiguration()
        css_text = _fonts.font_face_css(self.font_files) + (ASSETS_DIR / "bill.css").read_text("utf-8")
        if self.font_files:
            css_text += f"\nhtml {{ font-family: {_fonts.font_family(self.font_files)}; }}\n"
        self.css = CSS(string=css_text, base_url=ASSETS_URL, url_fetcher=self.fetcher,
                       font_config=self.font_config)
        self.count = 0

    def render_pdf(self, doc: BillDocument) -> bytes:
        resources: dict[str, bytes] = {}
        html = render_html(doc, resources=resources)
        self.fetcher.memory = resources
        try:
            pdf = HTML(string=html, base_url=ASSETS_URL, url_fetcher=self.fetcher).write_pdf(
                stylesheets=[self.css], font_config=self.font_config, pdf_variant=self.pdf_variant,
                pdf_identifier=_identifier(doc),
            )
        finally:
            self.fetcher.memory = {}
        self.count += 1
        return pdf

    def render_html_string(self, html: str) -> bytes:
        """Render arbitrary HTML with this renderer's CSS, fonts and fetcher (tests, previews)."""
        return HTML(string=html, base_url=ASSETS_URL, url_fetcher=self.fetcher).write_pdf(
            stylesheets=[self.css], font_config=self.font_config, pdf_variant=self.pdf_variant)


_DEFAULT: Renderer | None = None
_DEFAULT_PID: int | None = None


def default_renderer() -> Renderer:
    global _DEFAULT, _DEFAULT_PID
    if _DEFAULT is None or _DEFAULT_PID != os.getpid():
        _DEFAULT = Renderer()
        _DEFAULT_PID = os.getpid()
    return _DEFAULT


def render_pdf(doc: BillDocument) -> bytes:
    return default_renderer().render_pdf(doc)


def render_pdf_plain(doc: BillDocument, pdf_variant: str | None = DEFAULT_PDF_VARIANT) -> bytes:
    """The naive approach: inline CSS parsed per document, a new FontConfiguration per document,
    the system Noto CJK collection. Same template and content as ``Renderer``."""
    css = (ASSETS_DIR / "bill.css").read_text("utf-8")
    fetcher = AssetFetcher()
    resources: dict[str, bytes] = {}
    html = HTML(string=render_html(doc, inline_css=css, resources=resources), base_url=ASSETS_URL,
                url_fetcher=fetcher)
    fetcher.memory = resources
    return html.write_pdf(font_config=FontConfiguration(), pdf_variant=pdf_variant,
                          pdf_identifier=_identifier(doc))


# ----------------------------------------------------------------------------- worker pools

_WORKER: Renderer | None = None


def _init_worker(subset_fonts: bool, pdf_variant: str | None) -> None:
    global _WORKER
    _WORKER = Renderer(subset_fonts=subset_fonts, pdf_variant=pdf_variant)


def _work(doc: BillDocument) -> bytes:
    assert _WORKER is not None
    return _WORKER.render_pdf(doc)


_POOL: Any = None
_POOL_KEY: tuple | None = None


def shutdown_pool() -> None:
    """Stop the worker processes kept by ``render_many`` (also done at interpreter exit)."""
    global _POOL, _POOL_KEY
    if _POOL is not None:
        _POOL.close()
        _POOL.join()
    _POOL, _POOL_KEY = None, None


def _get_pool(workers: int, max_tasks_per_child: int, subset_fonts: bool, pdf_variant: str | None):
    global _POOL, _POOL_KEY
    key = (os.getpid(), workers, max_tasks_per_child, subset_fonts, pdf_variant)
    if _POOL is None or _POOL_KEY != key:
        if _POOL is not None and _POOL_KEY is not None and _POOL_KEY[0] == os.getpid():
            shutdown_pool()
        _fonts.subset_fonts()  # build the font subsets once, before the workers race for them
        methods = multiprocessing.get_all_start_methods()
        ctx = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
        _POOL = ctx.Pool(workers, initializer=_init_worker, initargs=(subset_fonts, pdf_variant),
                         maxtasksperchild=max_tasks_per_child or None)
        _POOL_KEY = key
    return _POOL


atexit.register(shutdown_pool)


def render_many(docs: Iterable[BillDocument], workers: int | None = None, max_tasks_per_child: int = 500,
                *, subset_fonts: bool = True, pdf_variant: str | None = DEFAULT_PDF_VARIANT,
                chunksize: int = 2) -> Iterator[bytes]:
    """Yield PDFs in the order of ``docs``.

    workers > 1: rendered by a pool of worker processes, each with its own ``Renderer`` and replaced
    after ``max_tasks_per_child`` bills so that memory stays flat. The pool is kept between calls
    (calling this per batch costs nothing extra); ``shutdown_pool()`` stops it.
    workers == 1: rendered in this process by the process-wide renderer.
    """
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        renderer = (default_renderer() if subset_fonts and pdf_variant == DEFAULT_PDF_VARIANT
                    else Renderer(subset_fonts=subset_fonts, pdf_variant=pdf_variant))
        for doc in docs:
            yield renderer.render_pdf(doc)
        return
    pool = _get_pool(workers, max_tasks_per_child, subset_fonts, pdf_variant)
    yield from pool.imap(_work, docs, chunksize=chunksize)
