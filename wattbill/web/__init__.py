"""The statement web service: a customer holding a token sees the annual summary and downloads the PDF.

Endpoints (``../shared/design.md``, "Statement service"):

- ``GET /``: the page (static HTML; the token is typed in or passed in the URL fragment ``#token=``,
  which browsers do not send to servers or put in logs);
- ``GET /api/summary``: the token's customer's annual bills (JSON);
- ``GET /api/statements/{year}.pdf``: the token's customer's statement;
- ``GET /api/customers/{customer_id}/statements/{year}.pdf``: 403 unless the token's customer is
  ``customer_id``.

Every API request must carry ``Authorization: Bearer <token>``; the token is checked (signature,
then expiry) on every request. PDFs are served from the bill run's output folder
(``<out>/pdf/<year>/<customer_id>.pdf``), never from a path built with unchecked input.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from wattbill.errors import BadToken, MissingExtra

try:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
    from starlette.routing import Route
except ImportError as exc:  # the [web] extra is not installed
    raise MissingExtra("the statement web service", "starlette", "web") from exc
from wattbill.statements import statement_path, statement_years
from wattbill.tokens import check_token

PAGE = Path(__file__).with_name("index.html")
CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NO_STORE = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}


def _error(status: int, message: str) -> JSONResponse:
    headers = dict(NO_STORE)
    if status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="wattbill"'
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(store_url: str | None, out_dir: Path | str, secret: str) -> Starlette:
    """The ASGI application over the store at ``store_url`` and the bill run's ``out_dir``."""
    out = Path(out_dir)
    from wattbill.labels import load_catalogue

    label_names = {d.code: d.name for d in load_catalogue()}

    def customer_of(request: Request) -> str:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise BadToken("missing bearer token")
        customer = check_token(token.strip(), secret)
        if not CUSTOMER_ID.match(customer):
            raise BadToken("invalid token")
        return customer

    def newest_version(customer: str, year: int) -> int | None:
        from wattbill.store import open_store

        store = open_store(store_url)
        try:
            bills = store.load_bills(year, [customer])
        finally:
            store.close()
        return int(bills["version"][0]) if bills.height else None

    def pdf_response(customer: str, year: int) -> Response:
        version = newest_version(customer, year)
        path = statement_path(out, year, customer, version) if version is not None else None
        if path is None or not path.is_file():
            return _error(404, f"no statement for {year}")
        return FileResponse(
            path, media_type="application/pdf", headers=NO_STORE,
            filename=f"wattbill-{year}-{customer}.pdf",
        )

    async def page(request: Request) -> Response:
        return HTMLResponse(
            PAGE.read_text("utf-8"),
            headers={**NO_STORE, "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-inline'; "
                     "style-src 'self' 'unsafe-inline'; img-src 'self' blob: data:; object-src 'none'; frame-ancestors 'none'"},
        )

    async def summary(request: Request) -> Response:
        try:
            customer = customer_of(request)
        except BadToken as exc:
            return _error(401, str(exc))
        years = statement_years(out)
        from wattbill.store import open_store

        store = open_store(store_url)
        try:
            rows: list[dict[str, Any]] = []
            for year in years:
                bills = store.load_bills(year, [customer])
                for b in bills.iter_rows(named=True):
                    rows.append({
                        "year": year, "version": b["version"], "tariff": b["tariff"],
                        "kwh_total": round(b["kwh_total"], 3), "charge_total": str(b["charge_total"]),
                        "labels": [
                            {"code": code, "zh": label_names.get(code, {}).get("zh", code),
                             "en": label_names.get(code, {}).get("en", code)}
                            for code in (b.get("labels") or [])
                        ],
                        "pdf": statement_path(out, year, customer, b["version"]).is_file(),
                    })
        finally:
            store.close()
        return JSONResponse({"customer_id": customer, "bills": rows}, headers=NO_STORE)

    async def own_statement(request: Request) -> Response:
        try:
            customer = customer_of(request)
        except BadToken as exc:
            return _error(401, str(exc))
        return pdf_response(customer, request.path_params["year"])

    async def customer_statement(request: Request) -> Response:
        try:
            customer = customer_of(request)
        except BadToken as exc:
            return _error(401, str(exc))
        if request.path_params["customer_id"] != customer:
            return _error(403, "this token is not for that customer")
        return pdf_response(customer, request.path_params["year"])

    return Starlette(routes=[
        Route("/", page),
        Route("/api/summary", summary),
        Route("/api/statements/{year:int}.pdf", own_statement),
        Route("/api/customers/{customer_id}/statements/{year:int}.pdf", customer_statement),
    ])
