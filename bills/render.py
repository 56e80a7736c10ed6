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
that is not a file inside ``bills/assets/`` (or one of the font subset files the renderer itself made).
"""

from __future__ import annotations

import collections
import hashlib
import logging
import mimetypes
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

import jinja2
from weasyprint import CSS, HTML
from weasyprint.text.fonts import FontConfiguration
from weasyprint.urls import URLFetcher, URLFetcherResponse

from bills import fonts as _fonts
from bills.document import BillDocument
from bills.i18n import translator

PACKAGE_DIR = Path(__file__).parent
ASSETS_DIR = (PACKAGE_DIR / "assets").resolve()
TEMPLATES_DIR = PACKAGE_DIR / "templates"
ASSETS_URL = ASSETS_DIR.as_uri() + "/"
DEFAULT_PDF_VARIANT = "pdf/ua-1"

log = logging.getLogger(__name__)


class RefusedURL(ValueError):
    """A bill tried to fetch something outside the package's assets."""


class AssetFetcher(URLFetcher):
    """Serves files under ``bills/assets/`` (and explicitly allowed files); refuses everything else:
    http(s), data:, other files, path traversal, symlinks pointing out of the folder."""

    def __init__(self, allowed_files: Iterable[Path] = ()):
        super().__init__(allowed_protocols={"file"}, allow_redirects=False, fail_on_errors=False)
        self.allowed_files = frozenset(Path(p).resolve() for p in allowed_files)
        self.refused: collections.deque[str] = collections.deque(maxlen=50)

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


def render_html(doc: BillDocument, inline_css: str | None = None) -> str:
    template = environment().get_template("bill.html.j2")
    return template.render(doc=doc, _=translator(doc.language), inline_css=inline_css)


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
        self.css = CSS(string=css_text, base_url=ASSETS_URL, url_fetcher=self.fetcher,
                       font_config=self.font_config)
        self.count = 0

    def render_pdf(self, doc: BillDocument) -> bytes:
        html = HTML(string=render_html(doc), base_url=ASSETS_URL, url_fetcher=self.fetcher)
        pdf = html.write_pdf(
            stylesheets=[self.css], font_config=self.font_config, pdf_variant=self.pdf_variant,
            pdf_identifier=_identifier(doc),
        )
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
    html = HTML(string=render_html(doc, inline_css=css), base_url=ASSETS_URL, url_fetcher=AssetFetcher())
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


def render_many(docs: Iterable[BillDocument], workers: int | None = None, max_tasks_per_child: int = 500,
                *, subset_fonts: bool = True, pdf_variant: str | None = DEFAULT_PDF_VARIANT,
                chunksize: int = 4) -> Iterator[bytes]:
    """Yield PDFs in the order of ``docs``, rendered by ``workers`` processes, each replaced after
    ``max_tasks_per_child`` bills (memory stays flat). workers=1 renders in this process."""
    workers = workers or os.cpu_count() or 1
    if workers == 1:
        renderer = Renderer(subset_fonts=subset_fonts, pdf_variant=pdf_variant)
        for i, doc in enumerate(docs, 1):
            yield renderer.render_pdf(doc)
            if max_tasks_per_child and i % max_tasks_per_child == 0:
                renderer = Renderer(subset_fonts=subset_fonts, pdf_variant=pdf_variant)
        return
    _fonts.subset_fonts()  # build the subset once, before the workers race for it
    ctx = multiprocessing.get_context("forkserver" if "forkserver" in multiprocessing.get_all_start_methods()
                                      else "spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(subset_fonts, pdf_variant),
                  maxtasksperchild=max_tasks_per_child or None) as pool:
        yield from pool.imap(_work, docs, chunksize=chunksize)
