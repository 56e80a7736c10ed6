"""Rendering: PDFs read back with pdftotext, page 1 as PNG (kept under test-artifacts/bills/),
escaping, the URL fetcher's refusals, font fallback, PDF/UA, size and determinism."""

from __future__ import annotations

import os
import shutil
import subprocess
from decimal import ROUND_HALF_UP, Decimal
from io import BytesIO
from pathlib import Path

import pytest

from tests.bills.sample import sample_inputs
from wattbill import bills
from wattbill.bills.render import ASSETS_DIR, AssetFetcher, RefusedURL, Renderer

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts" / "bills"
CASES = [("zh", "all"), ("zh", "none"), ("en", "all"), ("en", "none")]

# under CI (scripts/setup.sh installs poppler-utils) a missing pdftotext fails the tests instead
needs_poppler = pytest.mark.skipif(
    shutil.which("pdftotext") is None and not os.environ.get("CI"), reason="poppler-utils not installed"
)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.fixture(scope="module")
def rendered(renderer, tmp_path_factory) -> dict[tuple[str, str], tuple[dict, Path]]:
    out = {}
    folder = tmp_path_factory.mktemp("pdf")
    for language, labels in CASES:
        kw = sample_inputs(language=language, labels=labels)
        pdf = renderer.render_pdf(bills.build_document(**kw))
        path = folder / f"bill-{language}-{labels}.pdf"
        path.write_bytes(pdf)
        out[(language, labels)] = (kw, path)
    return out


def pdftotext(path: Path, *args: str) -> str:
    return subprocess.run(["pdftotext", *args, str(path), "-"], capture_output=True, text=True,
                          check=True).stdout


def expected_numbers(bill: dict) -> tuple[str, str]:
    """The annual charge and kWh as bills.parquet has them, formatted independently of bills.fmt."""
    charge = f"{Decimal(str(bill['charge_total'])).quantize(Decimal('0.01')):,}"
    kwh = f"{Decimal(repr(bill['kwh_total'])).quantize(Decimal('0.1'), rounding=ROUND_HALF_UP):,}"
    return charge, kwh


@pytest.mark.slow
@needs_poppler
@pytest.mark.parametrize(("language", "labels"), CASES)
def test_pdf_text_shows_the_bill_numbers(rendered, language, labels):
    kw, path = rendered[(language, labels)]
    text = pdftotext(path)
    page1 = pdftotext(path, "-f", "1", "-l", "1")
    charge, kwh = expected_numbers(kw["bill"])
    assert charge in page1 and kwh in page1  # page 1 stands alone
    assert ("年度电费账单" if language == "zh" else "Annual electricity bill") in page1
    for m in kw["months"]:  # monthly charges of bill_months.parquet
        assert f"{m['charge_total']:,.2f}" in text
    for card in kw["cards"]:
        assert card.title in text
    if labels == "none":
        assert ("没有需要特别提醒" if language == "zh" else "Nothing in your usage") in text
    flat = text.replace("\n", "")
    assert kw["tariff"].notice[:20] in flat  # the notice the tariff follows is on the bill
    assert "INTERNAL-NOTE" not in flat and "INTERNAL-SOURCE" not in flat  # internal notes never are


@pytest.mark.slow
@needs_poppler
@pytest.mark.parametrize(("language", "labels"), CASES)
def test_page_one_as_png_artifact(rendered, language, labels):
    _, path = rendered[(language, labels)]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    prefix = ARTIFACTS / f"{path.stem}-page1"
    subprocess.run(["pdftoppm", "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", str(path), str(prefix)],
                   check=True)
    png = prefix.with_suffix(".png")
    assert png.stat().st_size > 20_000  # a page with charts, not a blank one


@pytest.mark.slow
@pytest.mark.parametrize(("language", "labels"), CASES)
def test_size_under_150_kb(rendered, language, labels):
    _, path = rendered[(language, labels)]
    assert path.stat().st_size < 150_000


@pytest.mark.slow
def test_pdf_ua_tagged_with_language_and_title(rendered):
    from pypdf import PdfReader

    for (language, _labels), (_kw, path) in rendered.items():
        reader = PdfReader(str(path))
        root = reader.trailer["/Root"]
        assert root["/Lang"] == ("zh-CN" if language == "zh" else "en")
        assert "/StructTreeRoot" in root and root["/MarkInfo"]["/Marked"]
        assert reader.metadata.title == ("2024年度电费账单" if language == "zh" else "Annual electricity bill 2024")


@pytest.mark.slow
def test_same_bill_same_bytes(renderer):
    doc = bills.build_document(**sample_inputs(labels="none"))
    assert renderer.render_pdf(doc) == renderer.render_pdf(doc)


@pytest.mark.slow
@needs_poppler
def test_untrusted_name_and_address_come_out_as_text(renderer, tmp_path):
    name = "<script>alert(1)</script>"
    address = "{{ 7*7 }} 杭州市 <b>x</b>"
    pdf = renderer.render_pdf(bills.build_document(**sample_inputs(name=name, address=address, labels="none")))
    path = tmp_path / "x.pdf"
    path.write_bytes(pdf)
    text = pdftotext(path, "-f", "1", "-l", "1")
    assert name in text
    assert "{{ 7*7 }}" in text and "<b>x</b>" in text


@pytest.mark.slow
@needs_poppler
def test_rare_characters_render_from_the_chunk_fonts_or_the_system_font(renderer, tmp_path):
    # 赟 and 昇 are outside the main subset (GB 2312 level 2 / beyond), 䶮 is in CJK extension A,
    # 𠮷 (U+20BB7) in the supplementary plane: all come from the "Wattbill Sans Xnn" chunks, each
    # costing a few KB, not the full system font (~100 KB per PDF).
    pdf = renderer.render_pdf(bills.build_document(**sample_inputs(name="王赟昇 𠮷田", address="䶮路 1 号",
                                                                   labels="none")))
    path = tmp_path / "rare.pdf"
    path.write_bytes(pdf)
    text = pdftotext(path, "-f", "1", "-l", "1")
    assert "王赟昇" in text and "䶮路" in text and "𠮷田" in text
    fonts = subprocess.run(["pdffonts", str(path)], capture_output=True, text=True, check=True).stdout
    assert "Wattbill-Sans-X" in fonts and "Noto-Sans-CJK" not in fonts
    assert len(pdf) < 150_000


def test_weasyprint_subsets_fonts_with_harfbuzz():
    from weasyprint.text.ffi import harfbuzz, harfbuzz_subset

    assert harfbuzz_subset is not None and harfbuzz.hb_version_atleast(4, 1, 0)


def test_font_subsets_cover_every_fixed_text_and_fall_back_when_unwritable(tmp_path):
    from wattbill.bills import fonts

    built = fonts.subset_fonts()
    assert ("Wattbill Sans", 400) in built and ("Wattbill Sans", 700) in built
    assert any(family.startswith("Wattbill Sans X") for family, _w in built)
    main = set(fonts.charset_main())
    for path in [*(ASSETS_DIR.parent / "locale").glob("*.toml"), *(ASSETS_DIR.parent / "templates").glob("*")]:
        assert set(path.read_text("utf-8")) - {"\n"} <= main | {"\t"}
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("x")
    assert fonts.subset_fonts(not_a_folder / "fonts") == {}  # cannot be written: system fonts


# --- URL fetcher -------------------------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x.png",
    "https://example.com/style.css",
    "file:///etc/passwd",
    (ASSETS_DIR / ".." / "render.py").as_uri(),
    "file://" + str(ASSETS_DIR) + "/../render.py",
    "data:text/css,body{}",
    "ftp://example.com/x",
])
def test_fetcher_refuses_everything_outside_the_assets(url):
    with pytest.raises(RefusedURL):
        AssetFetcher().fetch(url)


def test_fetcher_serves_package_assets():
    response = AssetFetcher().fetch((ASSETS_DIR / "bill.css").as_uri())
    assert b"@page" in response.read()


@pytest.mark.slow
def test_rendering_fetches_nothing_outside(renderer):
    html = (
        '<html><head><link rel="stylesheet" href="http://127.0.0.1:9/x.css">'
        '<link rel="stylesheet" href="file:///etc/hostname"></head>'
        '<body><p>hi</p><img src="file:///etc/passwd"><img src="https://example.com/a.png">'
        '<img src="../render.py"></body></html>'
    )
    pdf = renderer.render_html_string(html)
    assert pdf.startswith(b"%PDF")
    refused = list(renderer.fetcher.refused)
    for url in ("http://127.0.0.1:9/x.css", "file:///etc/hostname", "file:///etc/passwd",
                "https://example.com/a.png"):
        assert url in refused
    assert any(u.endswith("render.py") for u in refused)


# --- many documents ----------------------------------------------------------------------------


@pytest.mark.slow
def test_render_many_in_worker_processes_keeps_order():
    docs = [bills.build_document(**sample_inputs(customer_id=f"00{i}", labels="none")) for i in range(3)]
    pdfs = list(bills.render_many(docs, workers=2, max_tasks_per_child=2))
    assert len(pdfs) == 3
    from pypdf import PdfReader

    for i, pdf in enumerate(pdfs):
        assert f"00{i}" in PdfReader(BytesIO(pdf)).pages[0].extract_text()
