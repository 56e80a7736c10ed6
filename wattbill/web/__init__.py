"""The customer's statement service: the statement page, the JSON API and the statements on demand.

Endpoints (the proposed contract is in ``docs/web.md``; the JSON API is described at ``/openapi.json``):

- ``GET /?token=<token>``: a portal link. The token is checked (signature, expiry, first use) and
  exchanged for a short-lived session cookie (``HttpOnly``, ``SameSite=Strict``; ``Secure`` over
  https); the answer is a small page that moves on to ``/`` at once, so the token leaves the address
  bar (a same-site step: a ``SameSite=Strict`` cookie set by a cross-site navigation is not sent on
  a redirect of that same navigation).
- ``GET /`` (``?year=``, ``?lang=zh|en``): the statement page, rendered on the server (no script).
- ``GET /statements/{year}.pdf``: the page's download (session cookie).
- ``GET /logout``: forgets the session.
- ``GET /api/summary | /api/daily | /api/running | /api/statements | /api/statements/{year}.pdf``
  and the same under ``/api/customers/{customer_id}/``: ``Authorization: Bearer <token>`` or the
  session cookie; a path naming another customer (or one that does not exist) answers 403 with the
  same body.

The store is read in worker threads (``run_in_threadpool``), never on the event loop; one store per
process, opened without schema statements. See ``service``, ``statements`` and ``security``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

from wattbill.errors import MissingExtra

try:
    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.requests import Request
    from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
    from starlette.routing import Route
except ImportError as exc:  # the [web] extra is not installed
    raise MissingExtra("the statement web service", "starlette", "web") from exc

from wattbill.bills import fmt
from wattbill.errors import BadToken, NothingToBill, UnknownCustomer, WattbillError
from wattbill.tokens import Keys, make_session, read_session, read_token
from wattbill.web.security import Limiter, Limits, RateLimited, SecurityMiddleware, UsedLinks
from wattbill.web.service import NotFound, Service
from wattbill.web.statements import StatementCache
from wattbill.web.text import words

HERE = Path(__file__).parent
COOKIE = "wattbill_session"
LANGUAGES = ("zh", "en")

__all__ = ["WebSettings", "create_app"]


@dataclass(frozen=True)
class WebSettings:
    """How the service behaves.

    session_ttl : int
        Life of the session cookie [s].
    secure_cookie : bool or None
        ``Secure`` on the cookie; None: when the request came over https.
    limits : Limits
        Rate limits (per address, failed authentications per address, per customer).
    """

    session_ttl: int = 900
    secure_cookie: bool | None = None
    limits: Limits = field(default_factory=Limits)


def _yuan(fen: int) -> str:
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def _kwh(wh: int) -> str:
    sign = "-" if wh < 0 else ""
    wh = abs(int(wh))
    return f"{sign}{wh // 1000}.{wh % 1000:03d}"


def _date(value: str | None, name: str) -> dt.date | None:
    if value is None or value == "":
        return None
    from wattbill.years import check_year

    try:
        day = dt.date.fromisoformat(value)
    except ValueError:
        raise WattbillError(f"{name}: {value!r} is not a date (YYYY-MM-DD)") from None
    check_year(day.year, name)
    return day


def create_app(store_url: str | None, out_dir: Path | str, secret: str | Keys,
               settings: WebSettings | None = None, *, catalog: Any = None, today: Any = None) -> Starlette:
    """The ASGI application over the store at ``store_url`` and the bill run's ``out_dir``.

    Parameters
    ----------
    store_url : str or None
        A store folder or a ``postgresql://`` URL (opened once, without schema statements).
    out_dir : Path or str
        The bill run's output folder (``features/``, ``pdf/``); statements rendered on demand are
        cached under ``statements/`` in it.
    secret : str or Keys
        The current secret, or the current and the previous one (key rotation).
    settings : WebSettings, optional
    catalog : tariffs.Catalog, optional
    today : callable returning a date, optional
        The clock of the running charge (tests).

    Raises
    ------
    StoreUnavailable
        When the store cannot be opened.
    """
    keys = secret if isinstance(secret, Keys) else Keys(secret)
    settings = settings or WebSettings()
    out = Path(out_dir)
    service = Service(store_url, out, catalog=catalog, today=today)
    cache = StatementCache(out)
    limiter = Limiter(settings.limits)
    used = UsedLinks()
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    page_template = env.get_template("page.html.j2")
    message_template = env.get_template("message.html.j2")

    # --- helpers -------------------------------------------------------------------------------

    def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
        h = dict(headers or {})
        if status == 401:
            h["WWW-Authenticate"] = 'Bearer realm="wattbill"'
        return JSONResponse({"error": message}, status_code=status, headers=h)

    def too_many(retry_after: int, html: bool = False, language: str = "zh") -> Response:
        headers = {"Retry-After": str(retry_after)}
        if html:
            return message(429, words(language)["too_many"], language, headers)
        return error(429, "too many requests", headers)

    def on_limited(scope: Any, retry_after: int) -> Response:
        path = scope.get("path", "")
        return too_many(retry_after, html=not path.startswith("/api/") and path != "/openapi.json")

    def message(status: int, text: str, language: str, headers: dict[str, str] | None = None,
                refresh: str | None = None, form: bool = False) -> HTMLResponse:
        w = words(language)
        body = message_template.render(w=w, lang=language, text=text, refresh=refresh, form=form)
        return HTMLResponse(body, status_code=status, headers=headers)

    def address(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    def authenticate(request: Request) -> str:
        """The customer of the request's bearer token or session cookie (rate limits counted).

        Failed authentications are limited per address (429 past the limit); a valid token or session
        is never refused for other clients' failures at the same address (a carrier's NAT), only by
        the per-address and per-customer limits."""
        header = request.headers.get("authorization")
        try:
            if header is not None:
                scheme, _, token = header.partition(" ")
                if scheme.lower() != "bearer" or not token.strip():
                    raise BadToken("missing bearer token")
                customer = read_token(token.strip(), keys).customer_id
            elif COOKIE in request.cookies:
                customer = read_session(request.cookies[COOKIE], keys).customer_id
            else:
                raise BadToken("missing bearer token or session")
        except BadToken:
            limiter.hit(limiter.failed, "failed", address(request))
            raise
        limiter.hit(limiter.customer, "customer", customer)
        return customer

    def language_of(request: Request, customer: dict[str, Any] | None) -> str:
        lang = request.query_params.get("lang")
        if lang in LANGUAGES:
            return str(lang)
        stored = (customer or {}).get("language")
        return "en" if stored == "en" else "zh"

    # --- the page ------------------------------------------------------------------------------

    def page_html(customer_id: str, year: int | None, lang_param: str | None) -> tuple[int, str]:
        gen = service.generation()
        try:
            acct = service.account(customer_id, gen)
        except UnknownCustomer:
            lang = lang_param if lang_param in LANGUAGES else "zh"
            return 404, message_template.render(w=words(lang), lang=lang, text=words(lang)["no_bill"])
        lang = lang_param if lang_param in LANGUAGES else ("en" if acct.customer.get("language") == "en" else "zh")
        if year is None and acct.bills:
            year = acct.bills[0].year

        def make() -> str:
            return render_page(acct, year, lang, gen)

        return 200, service.cached(("page", customer_id, year, lang), gen, make)

    def render_page(acct: Any, year: int | None, lang: str, gen: str) -> str:
        from wattbill.bills import charts

        w = words(lang)
        cid = acct.customer["customer_id"]
        doc = None
        if year is not None:
            try:
                doc = service.document(cid, year, lang, gen)
            except NotFound:
                doc = None
        monthly_svg = charts.monthly_bars(**{**doc.monthly_chart, "label_months": True, "prefix": "pm"}) \
            if doc is not None and doc.monthly_chart else (doc.monthly_svg if doc else None)
        running = daily30 = daily_year = None
        current = service.current_year(cid, gen)
        if current is not None:
            ryear, last = current
            days = service.year_days(cid, ryear, gen)
            try:
                run = service.running(cid, last, gen)
                running = {
                    "through": fmt.date(last, lang), "kwh": fmt.kwh_from_wh(run.wh), "charge": fmt.yuan(run.fen),
                    "charge_plain": _yuan(run.fen), "tier": run.tier, "year": ryear,
                    "months": [(fmt.month_short(m + 1, lang), fmt.yuan(f)) for m, f in enumerate(run.month_fen)
                               if m < last.month],
                }
            except (NothingToBill, KeyError, WattbillError):
                running = None
            daily30 = _daily_chart(days, last - dt.timedelta(days=29), last, lang, w, "d30", ryear)
            daily_year = _daily_chart(days, dt.date(ryear, 1, 1), last, lang, w, "dy", ryear)
        return page_template.render(
            w=w, lang=lang, other_lang="en" if lang == "zh" else "zh", doc=doc, year=year,
            customer=acct.customer, bills=acct.bills, monthly_svg=monthly_svg, running=running,
            daily30=daily30, daily_year=daily_year,
        )

    async def page(request: Request) -> Response:
        lang_param = request.query_params.get("lang")
        token = request.query_params.get("token")
        if token is not None:
            return await exchange(request, token.strip(), lang_param)
        lang = lang_param if lang_param in LANGUAGES else "zh"
        if COOKIE not in request.cookies:
            return message(401, words(lang)["signed_out"], lang, form=True)
        try:
            customer = authenticate(request)
        except BadToken:
            response = message(401, words(lang)["session_expired"], lang, form=True)
            response.delete_cookie(COOKIE, path="/")
            return response
        except RateLimited as exc:
            return too_many(exc.retry_after, html=True, language=lang)
        year_text = request.query_params.get("year")
        year = int(year_text) if year_text and year_text.isdigit() and len(year_text) == 4 else None
        status, html = await run_in_threadpool(page_html, customer, year, lang_param)
        return HTMLResponse(html, status_code=status)

    async def exchange(request: Request, token: str, lang_param: str | None) -> Response:
        lang = lang_param if lang_param in LANGUAGES else "zh"
        try:
            try:
                claims = read_token(token, keys)
            except BadToken:
                limiter.hit(limiter.failed, "failed", address(request))
                raise
            if not used.first_use(claims.nonce or token, claims.expires):
                limiter.hit(limiter.failed, "failed", address(request))
                return message(401, words(lang)["link_used"], lang, form=True)
        except BadToken:
            return message(401, words(lang)["link_invalid"], lang, form=True)
        except RateLimited as exc:
            return too_many(exc.retry_after, html=True, language=lang)
        target = "/" + (f"?lang={lang_param}" if lang_param in LANGUAGES else "")
        response = message(200, words(lang)["opening"], lang, refresh=target)
        secure = settings.secure_cookie if settings.secure_cookie is not None else request.url.scheme == "https"
        response.set_cookie(COOKIE, make_session(claims.customer_id, keys, settings.session_ttl),
                            max_age=settings.session_ttl, path="/", httponly=True, samesite="strict", secure=secure)
        return response

    async def logout(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    css = (HERE / "static" / "page.css").read_bytes()

    async def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css")

    # --- the API -------------------------------------------------------------------------------

    async def api(request: Request, work: Any) -> Response:
        """Authenticate, check the path's customer, run ``work(customer, request)`` in a thread."""
        try:
            customer = authenticate(request)
        except BadToken as exc:
            return error(401, str(exc))
        except RateLimited as exc:
            return too_many(exc.retry_after)
        named = request.path_params.get("customer_id")
        if named is not None and named != customer:
            return error(403, "forbidden")
        try:
            return await run_in_threadpool(work, customer, request)
        except UnknownCustomer:  # as for another's: nothing tells a missing customer apart
            return error(403, "forbidden")
        except NotFound as exc:
            return error(404, str(exc))
        except NothingToBill as exc:
            return error(404, str(exc))
        except WattbillError as exc:
            return error(422, str(exc))

    def summary_work(customer: str, request: Request) -> Response:
        gen = service.generation()
        acct = service.account(customer, gen)
        lang = language_of(request, acct.customer)
        rows = []
        for b in acct.bills:
            doc = service.document(customer, b.year, lang, gen)
            change = doc.tiles[2] if len(doc.tiles) > 2 else None  # the statement's "vs last year" tile
            rows.append({
                "year": b.year, "version": b.version, "tariff": b.row["tariff"],
                "kwh_total": _kwh(round(b.row["kwh_total"] * 1000)), "charge_total": str(b.row["charge_total"]),
                "charge_fen": int(b.row["charge_fen"]),
                "change": change.value if change else None,
                "estimated_days": int(b.row.get("estimated_days") or 0),
                "missing_days": doc.missing_days, "missing_text": doc.missing_text,
                "labels": [{"code": c.code, "title": c.title, "evidence": c.evidence, "why": c.why,
                            "what_to_do": c.what_to_do, "saving": c.saving} for c in doc.cards],
                "statement": f"/api/statements/{b.year}.pdf",
            })
        return JSONResponse({"customer_id": customer, "bills": rows})

    def daily_work(customer: str, request: Request) -> Response:
        gen = service.generation()
        service.account(customer, gen)
        last = _date(request.query_params.get("to"), "to")
        if last is None:
            current = service.current_year(customer, gen)
            last = current[1] if current else service.today()
        first = _date(request.query_params.get("from"), "from") or last - dt.timedelta(days=29)
        days = service.days(customer, first, last)
        return JSONResponse({"customer_id": customer, "from": first.isoformat(), "to": last.isoformat(), "days": [
            {"day": d.day.isoformat(), "wh": d.wh, "kwh": _kwh(d.wh),
             **{f"wh_{r}": v for r, v in zip(("sharp", "peak", "flat", "valley"), d.wh_regs, strict=True)},
             "estimated": d.estimated}
            for d in days]})

    def running_work(customer: str, request: Request) -> Response:
        gen = service.generation()
        service.account(customer, gen)
        through = _date(request.query_params.get("through"), "through")
        if through is None:
            current = service.current_year(customer, gen)
            if current is None:
                raise NotFound("no reads yet")
            through = current[1]
        run = service.running(customer, through, gen)
        return JSONResponse({
            "customer_id": customer, "through": through.isoformat(), "tariff": run.tariff, "wh": run.wh,
            "kwh": _kwh(run.wh), "charge": _yuan(run.fen), "charge_fen": run.fen, "tier": run.tier,
            "missing_days": run.missing_days,
            "missing_ranges": [[a.isoformat(), b.isoformat()] for a, b in run.missing_ranges],
            "months": [{"month": m + 1, "charge": _yuan(f), "charge_fen": f}
                       for m, f in enumerate(run.month_fen) if m < through.month],
        })

    def statements_work(customer: str, request: Request) -> Response:
        acct = service.account(customer)
        return JSONResponse({"customer_id": customer, "statements": [
            {"year": b.year, "version": b.version, "url": f"/api/statements/{b.year}.pdf"} for b in acct.bills]})

    def pdf_work(customer: str, request: Request) -> Response:
        year = int(request.path_params["year"])
        gen = service.generation()
        acct = service.account(customer, gen)
        bill = acct.bill(year)
        lang = language_of(request, acct.customer)
        customer_lang = "en" if acct.customer.get("language") == "en" else "zh"
        key = (customer, year, bill.version, lang)
        data, source = cache.get(key, lambda: service.document(customer, year, lang, gen),
                                 run_pdf_ok=lang == customer_lang)
        return Response(data, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="wattbill-{year}-{customer}-v{bill.version}.pdf"',
            "X-Statement-Version": str(bill.version), "X-Statement-Source": source,
        })

    def endpoint(work: Any) -> Any:
        async def handler(request: Request) -> Response:
            return await api(request, work)

        return handler

    async def openapi(request: Request) -> Response:
        from wattbill.web.openapi import schema

        return JSONResponse(schema())

    routes = [
        Route("/", page),
        Route("/logout", logout),
        Route("/static/page.css", stylesheet),
        Route("/openapi.json", openapi),
        Route("/statements/{year:int}.pdf", endpoint(pdf_work)),
    ]
    for prefix in ("/api", "/api/customers/{customer_id}"):
        routes += [
            Route(f"{prefix}/summary", endpoint(summary_work)),
            Route(f"{prefix}/daily", endpoint(daily_work)),
            Route(f"{prefix}/running", endpoint(running_work)),
            Route(f"{prefix}/statements", endpoint(statements_work)),
            Route(f"{prefix}/statements/{{year:int}}.pdf", endpoint(pdf_work)),
        ]
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        threading.Thread(target=service.warm, name="wattbill-warm", daemon=True).start()
        yield
        service.close()

    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.service = service
    app.state.statements = cache
    app.add_middleware(SecurityMiddleware, limiter=limiter, on_limited=on_limited)
    return app


def _daily_chart(days: list[Any], first: dt.date, last: dt.date, lang: str, w: dict[str, str],
                 prefix: str, year: int) -> dict[str, Any] | None:
    from wattbill.web.charts import daily_bars

    by_day = {d.day: d for d in days if first <= d.day <= last}
    if not by_day:
        return None
    span = [(first + dt.timedelta(days=i)) for i in range((last - first).days + 1)]
    series = [(day, by_day[day].wh if day in by_day else 0, by_day[day].estimated if day in by_day else False)
              for day in span]
    n_est = sum(1 for _d, _w, e in series if e)
    if len(span) <= 62:
        step = 7 if len(span) > 14 else 2
        ticks = [(i, f"{d.month}/{d.day}") for i, d in enumerate(span) if (len(span) - 1 - i) % step == 0]
    else:
        ticks = [(i, fmt.month_short(d.month, lang)) for i, d in enumerate(span) if d.day == 1 and d.month % 2 == 1]
    total = sum(wh for _d, wh, _e in series)
    title = w["day_chart_title"]
    desc = f"{fmt.date(first, lang)} – {fmt.date(last, lang)}: {fmt.kwh_from_wh(total)} {w['kwh']}"
    svg = daily_bars(days=series, title=title, desc=desc, unit=w["kwh"], estimated_label=w["estimated"],
                     tick_labels=ticks, prefix=prefix)
    return {"svg": svg, "estimated": n_est, "total": fmt.kwh_from_wh(total), "desc": desc,
            "days": len(by_day)}
