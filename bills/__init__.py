"""The personalised annual bill: document model, templates, SVG charts and PDF rendering.

    from wattbill.bills import build_document, render_pdf
    doc = build_document(customer, bill, months, features, cards, payments, tariff, language)
    pdf_bytes = render_pdf(doc)

See ``bills.document`` for the inputs it accepts and ``bills.render`` for the renderers. The document
model needs only the base install; the renderers (``render_*``, ``Renderer``) need the ``[pdf]`` extra
(WeasyPrint) and are imported when first used, so ``import wattbill.bills`` works without it and a
renderer used without it raises ``wattbill.errors.MissingExtra``.
"""

from typing import Any

from wattbill.bills.document import BillDocument, build_document, tariff_terms

_RENDER = ("Renderer", "render_html", "render_many", "render_pdf", "render_pdf_plain")


def __getattr__(name: str) -> Any:
    if name in _RENDER:
        from wattbill.bills import render

        return getattr(render, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BillDocument",
    "Renderer",
    "build_document",
    "render_html",
    "render_many",
    "render_pdf",
    "render_pdf_plain",
    "tariff_terms",
]
