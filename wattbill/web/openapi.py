"""The OpenAPI 3.1 description of the statement service's JSON API (served at ``/openapi.json``)."""

from __future__ import annotations

from typing import Any

_ERR = {"$ref": "#/components/schemas/Error"}
_YUAN = {"type": "string", "pattern": r"^-?\d+\.\d{2}$", "description": "yuan, exact to the fen"}
_KWH = {"type": "string", "pattern": r"^-?\d+\.\d{3}$", "description": "kWh, exact to the Wh"}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        401: "no token or session, or a forged, malformed or expired one",
        403: "the path names a customer other than the token's (or one that does not exist)",
        404: "nothing for that year",
        422: "a parameter that is not a date, or a range that is too long",
        429: "rate limit exceeded; see Retry-After",
    }
    return {str(c): {"description": text[c], "content": {"application/json": {"schema": _ERR}}} for c in codes}


def _json(schema: str) -> dict[str, Any]:
    return {"description": "OK", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


_DATE_PARAM = {"in": "query", "required": False, "schema": {"type": "string", "format": "date"}}


def _ops() -> dict[str, dict[str, Any]]:
    summary = {"get": {"summary": "The customer's annual bills, newest year first, with labels and advice",
                       "responses": {"200": _json("Summary"), **_errors(401, 403, 429)}}}
    daily = {"get": {
        "summary": "Daily use, meters summed per day, estimated days flagged",
        "parameters": [{**_DATE_PARAM, "name": "from", "description": "first day (default: 29 days before `to`)"},
                       {**_DATE_PARAM, "name": "to", "description": "last day (default: the last day with a read)"}],
        "responses": {"200": _json("Daily"), **_errors(401, 403, 422, 429)}}}
    running = {"get": {
        "summary": "The running charge of the year through a date, from the bill's tariff kernels",
        "parameters": [{**_DATE_PARAM, "name": "through", "description": "last day counted (default: the last day with a read)"}],
        "responses": {"200": _json("Running"), **_errors(401, 403, 404, 422, 429)}}}
    statements = {"get": {"summary": "The customer's statements (one per billed year, newest version)",
                          "responses": {"200": _json("Statements"), **_errors(401, 403, 429)}}}
    pdf = {"get": {
        "summary": "The statement PDF of the newest bill version (rendered on first request, then cached)",
        "parameters": [{"in": "path", "name": "year", "required": True, "schema": {"type": "integer"}},
                       {"in": "query", "name": "lang", "required": False, "schema": {"enum": ["zh", "en"]}}],
        "responses": {"200": {"description": "the PDF", "content": {"application/pdf": {}},
                              "headers": {"X-Statement-Version": {"schema": {"type": "integer"}}}},
                      **_errors(401, 403, 404, 429)}}}
    cid = {"in": "path", "name": "customer_id", "required": True, "schema": {"type": "string"}}

    def with_customer(op: dict[str, Any]) -> dict[str, Any]:
        get = dict(op["get"])
        get["parameters"] = [cid, *get.get("parameters", [])]
        return {"get": get}

    paths: dict[str, dict[str, Any]] = {"/api/summary": summary, "/api/daily": daily, "/api/running": running,
             "/api/statements": statements, "/api/statements/{year}.pdf": pdf}
    paths.update({p.replace("/api/", "/api/customers/{customer_id}/"): with_customer(o) for p, o in list(paths.items())})
    return paths


def schema() -> dict[str, Any]:
    """The OpenAPI document (a JSON-ready dict)."""
    label = {"type": "object", "properties": {
        "code": {"type": "string"}, "title": {"type": "string"}, "evidence": {"type": "string"},
        "why": {"type": "string"}, "what_to_do": {"type": "string"}, "saving": {"type": ["string", "null"]}}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "wattbill statement service", "version": "1",
                 "description": "A customer's own bills, daily use and running charge. Authenticate with "
                                "`Authorization: Bearer <token>` (a token from `wattbill token`) or the page's "
                                "session cookie. Every endpoint answers only for the token's customer."},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                                "session": {"type": "apiKey", "in": "cookie", "name": "wattbill_session"}},
            "schemas": {
                "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
                "Label": label,
                "Bill": {"type": "object", "properties": {
                    "year": {"type": "integer"}, "version": {"type": "integer"}, "tariff": {"type": "string"},
                    "kwh_total": _KWH, "charge_total": _YUAN, "charge_fen": {"type": "integer"},
                    "change": {"type": ["string", "null"], "description": "kWh against last year, as the statement says it"},
                    "estimated_days": {"type": "integer"},
                    "missing_days": {"type": "integer", "description": "open days without a read: their use is in no bill"},
                    "missing_text": {"type": ["string", "null"], "description": "what the statement says about them"},
                    "labels": {"type": "array", "items": label},
                    "statement": {"type": "string", "description": "URL of the PDF"}}},
                "Summary": {"type": "object", "properties": {
                    "customer_id": {"type": "string"},
                    "bills": {"type": "array", "items": {"$ref": "#/components/schemas/Bill"}}}},
                "Day": {"type": "object", "properties": {
                    "day": {"type": "string", "format": "date"}, "wh": {"type": "integer"}, "kwh": _KWH,
                    "wh_sharp": {"type": ["integer", "null"]}, "wh_peak": {"type": ["integer", "null"]},
                    "wh_flat": {"type": ["integer", "null"]}, "wh_valley": {"type": ["integer", "null"]},
                    "estimated": {"type": "boolean"}}},
                "Daily": {"type": "object", "properties": {
                    "customer_id": {"type": "string"}, "from": {"type": "string", "format": "date"},
                    "to": {"type": "string", "format": "date"},
                    "days": {"type": "array", "items": {"$ref": "#/components/schemas/Day"}}}},
                "Running": {"type": "object", "properties": {
                    "customer_id": {"type": "string"}, "through": {"type": "string", "format": "date"},
                    "tariff": {"type": "string"}, "wh": {"type": "integer"}, "kwh": _KWH,
                    "charge": _YUAN, "charge_fen": {"type": "integer"}, "tier": {"type": "integer"},
                    "missing_days": {"type": "integer", "description": "open days through `through` without a read (not counted)"},
                    "missing_ranges": {"type": "array", "items": {"type": "array", "items": {"type": "string", "format": "date"}}},
                    "months": {"type": "array", "items": {"type": "object", "properties": {
                        "month": {"type": "integer"}, "charge": _YUAN, "charge_fen": {"type": "integer"}}}}}},
                "Statements": {"type": "object", "properties": {
                    "customer_id": {"type": "string"},
                    "statements": {"type": "array", "items": {"type": "object", "properties": {
                        "year": {"type": "integer"}, "version": {"type": "integer"}, "url": {"type": "string"}}}}}},
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": _ops(),
    }
