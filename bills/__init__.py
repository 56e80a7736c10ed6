"""The personalised annual bill: document model, templates, SVG charts and PDF rendering.

    from wattbill.bills import build_document, render_pdf
    doc = build_document(customer, bill, months, features, cards, payments, tariff, language)
    pdf_bytes = render_pdf(doc)

See ``bills.document`` for the inputs it accepts and ``bills.render`` for the renderers.
"""

from wattbill.bills.document import BillDocument, build_document, tariff_terms
from wattbill.bills.render import Renderer, render_html, render_many, render_pdf, render_pdf_plain

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
