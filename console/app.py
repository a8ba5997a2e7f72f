"""The web app: Starlette, Jinja2 templates rendered on the server, no JavaScript."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import ipaddress
import logging
import math
import os
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime
from functools import wraps
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import jinja2
import yaml
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from actions import fiche_versions, markdown
from actions.fiche import FicheError
from console import auth, callbacks, chart, desk, fiche_editor, queries
from console.config import Settings, describe_url
from console.db import create_tables, make_engine
from console.domain import domain_entities, domain_intents, training_entity_texts, training_examples
from console.export import REVIEW_WARNING, annotated_example, build_export
from console.indexer import NOUMEA
from console.masking import mask

log = logging.getLogger("console")
HERE = Path(__file__).resolve().parent
SESSION_COOKIE = "chat_cagou_console"
# With the Secure cookie (production), the browser keeps a `__Host-` cookie only if it is
# Secure, has Path=/ and no Domain: no subdomain can set or shadow it.
HOST_COOKIE_PREFIX = "__Host-"
# Answer without a session: nothing there carries customer data.
# /desk/available: whether someone is present on the live desk (a yes or no for the action
# server, which asks it before handing a customer over; nothing else).
PUBLIC_PATHS = ("/login", "/healthz", "/desk/available")
PUBLIC_PREFIXES = ("/static/",)
CSP = (
    "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
MAX_NOTE = 2000
MAX_DAYS = 36500
REF = re.compile(r"[0-9a-f]{32}")
RETENTION_INTERVAL = 24 * 3600  # the automatic purge runs at start, then daily


# --- middleware ----------------------------------------------------------------------------


class SecurityHeaders:
    """Headers on every response; pages with customer data are never cached."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        static = scope["path"].startswith(PUBLIC_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"x-content-type-options", b"nosniff"),
                    (b"x-frame-options", b"DENY"),
                    (b"referrer-policy", b"same-origin"),
                    (b"content-security-policy", CSP.encode()),
                    (b"cross-origin-opener-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def session_cookie_name(secure: bool) -> str:
    return HOST_COOKIE_PREFIX + SESSION_COOKIE if secure else SESSION_COOKIE


class TrustedProxyHeaders:
    """The client's address (and scheme) from X-Forwarded-For (and X-Forwarded-Proto), only
    when the direct peer is one of the trusted proxies: otherwise anyone could pick the
    address the login throttle counts against. The rightmost address that is not a trusted
    proxy is the client's (the proxies append; what the client wrote stands to the left)."""

    def __init__(self, app: ASGIApp, trusted: Iterable[str]):
        self.app = app
        self.networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def trusted(self, host: str) -> bool:
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = scope.get("client")
        if scope["type"] == "http" and client and self.trusted(client[0]):
            # several X-Forwarded-For headers are one list, in order
            forwarded = ",".join(v.decode("latin-1") for k, v in scope["headers"] if k == b"x-forwarded-for")
            hops = [h.strip() for h in forwarded.split(",") if h.strip()]
            for hop in reversed(hops):
                if not self.trusted(hop):
                    try:
                        ipaddress.ip_address(hop)
                    except ValueError:
                        break  # not an address: keep the peer's
                    scope = {**scope, "client": (hop, 0)}
                    break
            protos = [v for k, v in scope["headers"] if k == b"x-forwarded-proto"]
            proto = protos[-1].decode("latin-1").split(",")[-1].strip().lower() if protos else ""
            if proto in ("http", "https"):
                scope = {**scope, "scheme": proto}
        await self.app(scope, receive, send)


class RequireLogin:
    """Refuses every path but the public ones without a valid session: GET is sent to the
    login page, anything else gets 403. Runs inside SessionMiddleware."""

    def __init__(self, app: ASGIApp, settings: Settings, engine: Engine):
        self.app, self.settings, self.engine = app, settings, engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["path"] in PUBLIC_PATHS
            or scope["path"].startswith(PUBLIC_PREFIXES)
        ):
            return await self.app(scope, receive, send)
        session = scope["session"]
        user = await run_in_threadpool(self._user, session)
        if user is None:
            session.pop("sid", None)
            if scope["method"] in ("GET", "HEAD"):
                target = scope["path"] + (
                    "?" + scope["query_string"].decode("latin-1") if scope["query_string"] else ""
                )
                response: Response = RedirectResponse(
                    "/login?" + urlencode({"next": target}), status_code=303
                )
            else:
                response = PlainTextResponse("Connexion requise.", status_code=403)
            return await response(scope, receive, send)
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, receive, send)

    def _user(self, session: dict[str, Any]) -> dict[str, Any] | None:
        sid = session.get("sid")
        if not isinstance(sid, str) or not sid:
            return None
        user = auth.session_user(self.engine, sid)
        if user is None or user["role"] not in auth.ROLES:
            return None
        return user


# --- helpers -------------------------------------------------------------------------------


def nc_time(ts: float | None, seconds: bool = False) -> str:
    if ts is None:
        return ""
    return datetime.fromtimestamp(ts, NOUMEA).strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")


def wait_text(seconds: float) -> str:
    """'45 s', '3 min', '1 h 05'."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d}"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f} %".replace(".", ",")


def confidence(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


SENDER_NAMESPACES = ("web", "fb", "rest", "sio")


def ref_key(secret_key: str) -> bytes:
    """The key of the conversation references, derived from the console's key."""
    return hmac.new(secret_key.encode(), b"chat-cagou console conversation ref", hashlib.sha256).digest()


def conversation_url(key: bytes, sender_id: str) -> str:
    return "/conversations/" + queries.conversation_ref(key, sender_id)


def sender_label(key: bytes, sender_id: str) -> str:
    """What the pages show of a sender id: its channel namespace and a short reference."""
    namespace, sep, _ = sender_id.partition(":")
    prefix = namespace + ":" if sep and namespace in SENDER_NAMESPACES else ""
    return prefix + "réf. " + queries.conversation_ref(key, sender_id)[:8]


def field(data: FormData, name: str) -> str:
    """A text field of a submitted form, '' when absent (a file in its place counts as absent)."""
    value = data.get(name)
    # NUL: PostgreSQL refuses it in a string (a 500 instead of a refusal)
    return value.replace("\x00", "") if isinstance(value, str) else ""


def safe_next(target: str | None) -> str:
    """Only a path of this site: never an open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/conversations"


def make_templates(key: bytes) -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True, undefined=jinja2.StrictUndefined
    )
    env.filters.update(
        nc_time=nc_time,
        percent=percent,
        confidence=confidence,
        conversation_url=lambda sender_id: conversation_url(key, sender_id),
        conversation_ref=lambda sender_id: queries.conversation_ref(key, sender_id),
        sender_label=lambda sender_id: sender_label(key, sender_id),
        mask=mask,
        wait_text=wait_text,
        # the assistant's Markdown (actions/markdown.py) as the customer reads it
        answer_text=markdown.plain,
        # a fiche field's HTML id (/fiche): its dotted path, dots made dashes
        field_id=lambda path: "champ-" + re.sub(r"[^\w-]", "-", path),
    )
    env.globals.update(flag_names=queries.FLAGS)
    return Jinja2Templates(env=env)


def render(request: Request, name: str, context: dict[str, Any] | None = None, status: int = 200) -> Response:
    session = request.session
    if "csrf" not in session:
        session["csrf"] = auth.new_csrf_token()
    ctx = {
        "user": getattr(request.state, "user", None),
        "csrf_token": session["csrf"],
        "flashes": session.pop("flash", []),
        "path": request.url.path,
    }
    ctx.update(context or {})
    return request.app.state.templates.TemplateResponse(request, name, ctx, status_code=status)


def flash(request: Request, message: str, kind: str = "ok") -> None:
    request.session.setdefault("flash", []).append([kind, message])


def forbidden(request: Request, message: str = "Accès refusé.") -> Response:
    return render(request, "error.html", {"title": "Accès refusé", "message": message}, status=403)


Handler = Callable[..., Awaitable[Response]]


def page(roles: Iterable[str] = auth.ROLES, refused: str = "") -> Callable[[Handler], Handler]:
    """A GET page for these roles (RequireLogin has already refused the anonymous)."""
    roles = tuple(roles)

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            user = getattr(request.state, "user", None)
            if user is None:
                return PlainTextResponse("Connexion requise.", status_code=403)
            if user["role"] not in roles:
                return forbidden(request, refused or "Cette page est réservée aux administrateurs.")
            return await handler(request)

        return endpoint

    return decorate


def form(
    roles: Iterable[str] = auth.ROLES, login: bool = True, max_fields: int = 50, refused: str = ""
) -> Callable[[Handler], Handler]:
    """A POST handler: CSRF token checked first, then the role; the handler gets the form."""
    roles = tuple(roles)

    def decorate(handler: Handler) -> Handler:
        @wraps(handler)
        async def endpoint(request: Request) -> Response:
            data = await request.form(max_files=0, max_fields=max_fields)
            if not auth.csrf_ok(request.session, field(data, "csrf_token")):
                return render(
                    request,
                    "error.html",
                    {
                        "title": "Formulaire refusé",
                        "message": "Le jeton de sécurité du formulaire manque ou a expiré. Rechargez la page.",
                    },
                    status=403,
                )
            if login:
                user = getattr(request.state, "user", None)
                if user is None:
                    return PlainTextResponse("Connexion requise.", status_code=403)
                if user["role"] not in roles:
                    return forbidden(request, refused or "Cette action est réservée aux administrateurs.")
            return await handler(request, data)

        return endpoint

    return decorate


def int_param(value: str | None, default: int, low: int, high: int) -> int:
    try:
        return min(max(int(value or default), low), high)
    except ValueError:
        return default


# --- pages ---------------------------------------------------------------------------------


async def healthz(request: Request) -> Response:
    return PlainTextResponse("ok")


async def home(request: Request) -> Response:
    return RedirectResponse("/conversations", status_code=303)


async def login_page(request: Request) -> Response:
    if request.method == "POST":
        return await login_submit(request)
    return render(
        request,
        "login.html",
        {"next": safe_next(request.query_params.get("next")), "error": None, "name": ""},
    )


def name_for_log(name: str, known: bool) -> str:
    """A failed login's name, for the log: an unknown name may be a password typed in the
    wrong field, so only its length is written."""
    return repr(name) if known else f"an unknown name ({len(name)} characters)"


@form(login=False)
async def login_submit(request: Request, data: FormData) -> Response:
    state = request.app.state
    name = field(data, "name").strip()[:100]
    password = field(data, "password")
    client = request.client.host if request.client else "?"
    # counted before the password is checked: parallel attempts cannot all get through
    wait = state.login_throttle.attempt(name, client)
    if wait > 0:
        log.warning("login throttled from %s (%.0f s to wait)", client, wait)
        return render(
            request,
            "login.html",
            {
                "next": safe_next(field(data, "next")),
                "name": name,
                "error": f"Trop d'essais. Réessayez dans {max(1, math.ceil(wait))} s.",
            },
            status=429,
        )
    user, known = await run_in_threadpool(auth.check_login, state.engine, name, password)
    if user is None:
        log.warning("failed login for %s from %s", name_for_log(name, known), client)
        return render(
            request,
            "login.html",
            {"next": safe_next(field(data, "next")), "name": name, "error": "Nom ou mot de passe incorrect."},
            status=401,
        )
    state.login_throttle.succeeded(name, client)
    sid = await run_in_threadpool(auth.open_session, state.engine, user["id"], state.settings.session_max_age)
    # a new session (and a new CSRF token) at login: nothing of the anonymous one is kept
    request.session.clear()
    request.session.update(sid=sid, csrf=auth.new_csrf_token())
    log.info("login %s (%s)", user["name"], user["role"])
    return RedirectResponse(safe_next(field(data, "next")), status_code=303)


@form()
async def logout(request: Request, data: FormData) -> Response:
    sid = request.session.get("sid")
    if isinstance(sid, str):
        await run_in_threadpool(auth.close_session, request.app.state.engine, sid)
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


@page()
async def conversations_page(request: Request) -> Response:
    state = request.app.state
    filters = queries.Filters.from_query(request.query_params)
    page_no = int_param(request.query_params.get("page"), 1, 1, 100000)
    per_page = state.settings.per_page
    items, total = await run_in_threadpool(
        queries.list_conversations, state.engine, filters, page_no, per_page
    )
    await run_in_threadpool(
        queries.remember_refs, state.engine, state.ref_key, [i["sender_id"] for i in items]
    )
    choices = await run_in_threadpool(queries.filter_choices, state.engine)
    pages = max(1, math.ceil(total / per_page))
    base = filters.as_query()
    return render(
        request,
        "conversations.html",
        {
            "items": items,
            "total": total,
            "page": page_no,
            "pages": pages,
            "filters": filters,
            "choices": choices,
            "domain_intents": domain_intents(state.settings.domain_path),
            "prev_url": "?" + urlencode({**base, "page": page_no - 1}) if page_no > 1 else None,
            "next_url": "?" + urlencode({**base, "page": page_no + 1}) if page_no < pages else None,
            "filtered": bool(base),
        },
    )


def not_found(request: Request) -> Response:
    return render(
        request,
        "error.html",
        {"title": "Conversation introuvable", "message": "Elle n'existe pas ou a été purgée."},
        status=404,
    )


async def resolve_sender(request: Request) -> str | None:
    """The sender id of the conversation the path names by its reference."""
    ref = request.path_params["ref"]
    if not REF.fullmatch(ref):
        return None
    state = request.app.state
    return await run_in_threadpool(queries.sender_of_ref, state.engine, ref, state.ref_key)


async def conversation_page(request: Request) -> Response:
    if request.method == "POST":
        return await conversation_submit(request)
    return await conversation_view(request)


@page()
async def conversation_view(request: Request) -> Response:
    state = request.app.state
    sender_id = await resolve_sender(request)
    if sender_id is None:
        # an older link, by sender id: to the same page by its reference
        legacy = request.path_params["ref"].replace("\x00", "")
        if legacy and await run_in_threadpool(queries.conversation_exists, state.engine, legacy):
            await run_in_threadpool(queries.remember_refs, state.engine, state.ref_key, [legacy])
            return RedirectResponse(conversation_url(state.ref_key, legacy), status_code=303)
        return not_found(request)
    found = await run_in_threadpool(queries.conversation, state.engine, sender_id)
    if found is None:
        return not_found(request)
    return render(
        request,
        "conversation.html",
        {
            "sender_id": sender_id,
            "c": found,
            "intents": domain_intents(state.settings.domain_path),
            "suggested_tags": queries.SUGGESTED_TAGS,
        },
    )


@form()
async def conversation_submit(request: Request, data: FormData) -> Response:
    state = request.app.state
    engine, user = state.engine, request.state.user
    sender_id = await resolve_sender(request)
    if sender_id is None:
        return not_found(request)
    back = conversation_url(state.ref_key, sender_id)
    op = field(data, "op")
    if op in ("tag", "untag"):
        tag = " ".join(field(data, "tag").split())[:50]
        if not tag:
            flash(request, "Étiquette vide.", "error")
        elif op == "tag":
            await run_in_threadpool(queries.add_tag, engine, sender_id, tag, user["name"])
        else:
            await run_in_threadpool(queries.remove_tag, engine, sender_id, tag)
    elif op == "note":
        text = field(data, "text").strip()
        if not text:
            flash(request, "Note vide.", "error")
        else:
            await run_in_threadpool(queries.add_note, engine, sender_id, text[:MAX_NOTE], user["name"])
            flash(request, "Note ajoutée.")
    elif op in ("review", "unreview"):
        await run_in_threadpool(queries.set_reviewed, engine, sender_id, op == "review", user["name"])
        flash(request, "Conversation marquée revue." if op == "review" else "Marque « revue » retirée.")
    elif op in ("label", "unlabel"):
        try:
            event_id = int(field(data, "event_id"))
            if not 0 < event_id <= queries.MAX_EVENT_ID:
                raise ValueError(event_id)
        except ValueError:
            return render(
                request, "error.html", {"title": "Requête invalide", "message": "Message inconnu."}, 400
            )
        message = await run_in_threadpool(queries.customer_message, engine, sender_id, event_id)
        if message is None:
            return render(
                request, "error.html", {"title": "Requête invalide", "message": "Message inconnu."}, 404
            )
        back += f"#m{event_id}"
        if op == "unlabel":
            await run_in_threadpool(queries.remove_label, engine, sender_id, event_id)
            flash(request, "Réétiquetage retiré.")
        else:
            intent = field(data, "intent")
            if intent not in domain_intents(state.settings.domain_path):
                return render(
                    request,
                    "error.html",
                    {"title": "Requête invalide", "message": "Intention inconnue du domaine."},
                    400,
                )
            parse = message["parse_data"]
            known_texts = await run_in_threadpool(training_entity_texts, state.settings.data_path)
            example = annotated_example(
                message["text"],
                parse.get("entities") or [],
                set(domain_entities(state.settings.domain_path)),
                known_texts,
            )
            predicted = (parse.get("intent") or {}).get("name")
            await run_in_threadpool(
                queries.set_label,
                engine,
                sender_id,
                event_id,
                intent,
                example,
                mask(message["text"]),
                predicted,
                user["name"],
            )
            flash(request, f"Message réétiqueté : {intent}.")
    else:
        return render(
            request, "error.html", {"title": "Requête invalide", "message": "Action inconnue."}, 400
        )
    return RedirectResponse(back, status_code=303)


@page()
async def insights_page(request: Request) -> Response:
    state = request.app.state
    days = int_param(request.query_params.get("days"), 30, 0, 366)
    data = await run_in_threadpool(queries.insights, state.engine, days or None)
    since = datetime.combine(data["first_day"], datetime.min.time(), NOUMEA).timestamp()
    live = await run_in_threadpool(desk.handoff_stats, state.engine, since, time.time() + 1)
    return render(
        request,
        "insights.html",
        {
            "d": data,
            "live": live,
            "days": days,
            "periods": [(7, "7 jours"), (30, "30 jours"), (90, "90 jours"), (0, "tout")],
            "chart": chart.stacked_bars(data["per_day"], data["channels"]),
            "rates_chart": chart.rate_lines(data["feedback"]["per_day"]),
            "rate_series": [(name, colour, dash) for _, name, colour, dash in chart.RATE_SERIES],
            "legend": chart.legend(data["channels"]),
            "top_max": max([n for _, n in data["top_intents"]] + [1]),
        },
    )


@page()
async def labels_page(request: Request) -> Response:
    state = request.app.state
    labels = await run_in_threadpool(queries.all_labels, state.engine)
    await run_in_threadpool(
        queries.remember_refs, state.engine, state.ref_key, [x["sender_id"] for x in labels]
    )
    return render(request, "labels.html", {"labels": labels, "review_warning": REVIEW_WARNING})


@page(roles=("admin",))
async def export_labels(request: Request) -> Response:
    state = request.app.state
    labels = await run_in_threadpool(queries.all_labels, state.engine)
    existing = await run_in_threadpool(training_examples, state.settings.data_path)
    text, written, skipped = build_export(labels, existing, domain_intents(state.settings.domain_path))
    filename = f"console_export_{datetime.now(NOUMEA):%Y%m%d_%H%M}.yml"
    log.info("export by %s: %d examples, %d left out", request.state.user["name"], written, skipped)
    return Response(
        text,
        media_type="application/x-yaml; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{filename}"'},
    )


@page(roles=("admin",))
async def admin_page(request: Request) -> Response:
    users = await run_in_threadpool(auth.list_users, request.app.state.engine)
    return render(
        request,
        "admin.html",
        {
            "users": users,
            "days": request.app.state.settings.retention_days or 90,
            "retention_days": request.app.state.settings.retention_days,
            "review_warning": REVIEW_WARNING,
        },
    )


@page(roles=("admin",))
async def purge_preview_page(request: Request) -> Response:
    days = int_param(request.query_params.get("days"), 90, 0, MAX_DAYS)
    cutoff = queries.cutoff_for_days(days)
    preview = await run_in_threadpool(queries.purge_preview, request.app.state.engine, cutoff)
    return render(request, "purge.html", {"days": days, "cutoff": cutoff, "preview": preview, "done": None})


@form(roles=("admin",))
async def purge_submit(request: Request, data: FormData) -> Response:
    try:
        days = int(field(data, "days"))
        cutoff = float(field(data, "cutoff"))
        # NaN would pass every comparison below, and on PostgreSQL `timestamp < 'NaN'` is
        # true for every event: never a purge without a finite cutoff and a sane duration
        if not math.isfinite(cutoff) or not 0 <= days <= MAX_DAYS:
            raise ValueError(cutoff)
    except ValueError:
        return render(request, "error.html", {"title": "Requête invalide", "message": "Durée invalide."}, 400)
    # the cutoff of the preview the admin confirmed, within a day of `days` ago
    if days < 0 or abs(cutoff - queries.cutoff_for_days(days)) > 86400 or field(data, "confirm") != "yes":
        return render(
            request, "error.html", {"title": "Requête invalide", "message": "Purge non confirmée."}, 400
        )
    done = await run_in_threadpool(queries.purge, request.app.state.engine, cutoff)
    log.warning(
        "purge by %s: %d events older than %d days, from %d conversations (%d entirely)",
        request.state.user["name"],
        done["events"],
        days,
        done["conversations"],
        done["whole"],
    )
    return render(request, "purge.html", {"days": days, "cutoff": cutoff, "preview": None, "done": done})


def erase_customer(engine: Engine, key: bytes, sender_id: str, by: str) -> dict[str, int]:
    """Erases one customer everywhere the console can reach; logs counts and the
    conversation's reference, never the sender id or any content."""
    counts = queries.erase_sender(engine, sender_id)
    dedupe = os.environ.get("FB_DEDUPE_DB", "").strip()
    if dedupe:
        counts["messenger_dedupe"] = queries.erase_messenger_dedupe(dedupe, sender_id)
    log.warning(
        "erasure by %s of conversation %s: %s",
        by,
        queries.conversation_ref(key, sender_id)[:8],
        ", ".join(f"{n} {kind}" for kind, n in counts.items()),
    )
    return counts


@page(roles=("admin",))
async def erase_page(request: Request) -> Response:
    state = request.app.state
    q = queries.text_param(request.query_params.get("q"), 200)
    matches, error = None, None
    if q:
        try:
            matches = await run_in_threadpool(queries.senders_mentioning, state.engine, q)
        except ValueError:
            error = "Cherchez au moins 4 caractères."
    conversation = queries.text_param(request.query_params.get("conversation"), 64)
    if conversation and REF.fullmatch(conversation):
        sender_id = await run_in_threadpool(queries.sender_of_ref, state.engine, conversation, state.ref_key)
        if sender_id is not None:
            matches = await run_in_threadpool(queries.sender_summary, state.engine, sender_id)
    if matches:
        await run_in_threadpool(
            queries.remember_refs, state.engine, state.ref_key, [m["sender_id"] for m in matches]
        )
    return render(request, "erase.html", {"q": q, "matches": matches, "error": error, "done": None})


@form(roles=("admin",))
async def erase_submit(request: Request, data: FormData) -> Response:
    state = request.app.state
    ref = field(data, "conversation")
    sender_id = (
        await run_in_threadpool(queries.sender_of_ref, state.engine, ref) if REF.fullmatch(ref) else None
    )
    if sender_id is None or field(data, "confirm") != "yes":
        return render(
            request,
            "error.html",
            {"title": "Requête invalide", "message": "Effacement non confirmé ou conversation inconnue."},
            400,
        )
    done = await run_in_threadpool(
        erase_customer, state.engine, state.ref_key, sender_id, request.state.user["name"]
    )
    return render(request, "erase.html", {"q": "", "matches": None, "error": None, "done": done})


# --- live desk ------------------------------------------------------------------------------


async def desk_available(request: Request) -> Response:
    present = await run_in_threadpool(desk.available, request.app.state.engine)
    return JSONResponse({"available": present})


async def desk_view(request: Request) -> dict[str, Any]:
    state = request.app.state
    name = request.state.user["name"]
    present = await run_in_threadpool(desk.touch, state.engine, name)
    view = await run_in_threadpool(desk.view, state.engine, name)
    senders = [q["sender_id"] for q in view["queue"]] + [h["sender_id"] for h in view["mine"]]
    await run_in_threadpool(queries.remember_refs, state.engine, state.ref_key, senders)
    return {"present": present, "view": view, "rasa_linked": bool(state.settings.rasa_url)}


@page()
async def direct_page(request: Request) -> Response:
    return render(request, "direct.html", await desk_view(request))


@page()
async def direct_live(request: Request) -> Response:
    """The live parts of /direct, rendered by the same macros as the page."""
    context = await desk_view(request)
    module = request.app.state.templates.env.get_template("_desk.html").make_module(
        {"csrf_token": request.session.get("csrf", "")}
    )
    key = request.app.state.ref_key
    parts = {"queue": str(module.queue(context["view"]["queue"]))}
    mine = []
    for h in context["view"]["mine"]:
        ref = queries.conversation_ref(key, h["sender_id"])
        parts[ref] = str(module.messages(h["messages"], False))
        mine.append(ref)
    return JSONResponse({"present": context["present"], "parts": parts, "mine": mine})


def desk_done(request: Request, error: str | None, message: str) -> Response:
    """JSON for the desk's script, else a flash and back to the desk."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"ok": error is None, "error": error}, status_code=200 if error is None else 409)
    flash(request, error or message, "error" if error else "ok")
    return RedirectResponse("/direct", status_code=303)


async def desk_sender(request: Request, data: FormData) -> str | None:
    ref = field(data, "conversation")
    if not REF.fullmatch(ref):
        return None
    return await run_in_threadpool(queries.sender_of_ref, request.app.state.engine, ref)


@form()
async def direct_presence(request: Request, data: FormData) -> Response:
    present = field(data, "present") == "1"
    await run_in_threadpool(desk.set_presence, request.app.state.engine, request.state.user["name"], present)
    return desk_done(
        request, None, "Vous êtes présent(e) sur le desk." if present else "Vous êtes absent(e)."
    )


def desk_action(action: Callable[..., None], done: str) -> Handler:
    @form()
    async def endpoint(request: Request, data: FormData) -> Response:
        state = request.app.state
        sender_id = await desk_sender(request, data)
        if sender_id is None:
            return desk_done(request, "Conversation inconnue.", "")
        args: list[Any] = [state.engine, state.settings, sender_id, request.state.user["name"]]
        if action is desk.reply:
            args.append(field(data, "text"))
        try:
            await run_in_threadpool(action, *args)
        except desk.DeskError as error:
            return desk_done(request, str(error), "")
        return desk_done(request, None, done)

    return endpoint


direct_take = desk_action(desk.take, "Conversation prise en charge : le client en est informé.")
direct_reply = desk_action(desk.reply, "Message envoyé.")
direct_release = desk_action(desk.release, "Conversation rendue à l'assistant.")


# --- callback requests ------------------------------------------------------------------------


@page()
async def rappels_page(request: Request) -> Response:
    state = request.app.state
    status = "done" if request.query_params.get("statut") == "fait" else "todo"
    found = await run_in_threadpool(callbacks.requests, state.engine, status)
    await run_in_threadpool(
        queries.remember_refs, state.engine, state.ref_key, [r["sender_id"] for r in found]
    )
    return render(request, "rappels.html", {"requests": found, "status": status})


@form()
async def rappels_submit(request: Request, data: FormData) -> Response:
    try:
        event_id = int(field(data, "event_id"))
    except ValueError:
        event_id = -1
    done = field(data, "done") == "1"
    if not 0 < event_id < 2**62 or not await run_in_threadpool(
        callbacks.mark, request.app.state.engine, event_id, request.state.user["name"], done
    ):
        return render(
            request,
            "error.html",
            {"title": "Requête invalide", "message": "Demande de rappel inconnue."},
            400,
        )
    flash(request, "Demande marquée comme faite." if done else "Demande remise à rappeler.")
    return RedirectResponse("/rappels" if done else "/rappels?statut=fait", status_code=303)


# --- the fiche: edit, preview, publish, roll back (issue 16) ---------------------------------

FICHE_REFUSED = "La fiche se modifie avec un compte éditeur ou administrateur."
FICHE_FORM_FIELDS = 500  # every value of the fiche, the days as checkboxes
SERVERS_SEEN = 600.0  # action servers that reported within 10 minutes are listed


def fiche_context(engine: Engine) -> dict[str, Any]:
    """The published version and its history, and what each action server serves."""
    with engine.connect() as conn:
        current = fiche_versions.published(conn)
        versions = {v.number: v for v in fiche_versions.all_versions(conn)}
        history = fiche_versions.history(conn)
        servers = fiche_versions.servers_seen(conn, time.time() - SERVERS_SEEN)
    return {"current": current, "versions": versions, "history": history, "servers": servers}


def sections(fields: list[fiche_editor.Field]) -> list[tuple[str, list[fiche_editor.Field]]]:
    """The form's fields by section, in the fiche's order."""
    grouped: dict[str, list[fiche_editor.Field]] = {}
    for f in fields:
        grouped.setdefault(f.section, []).append(f)
    return list(grouped.items())


async def render_fiche_form(
    request: Request, fields: list[fiche_editor.Field], errors: list[str] | None = None, status: int = 200
) -> Response:
    context = await run_in_threadpool(fiche_context, request.app.state.engine)
    context.update(
        sections=sections(fields),
        errors=errors or [],
        day_names=fiche_editor.DAY_NAMES,
        status_labels=fiche_editor.STATUS_LABELS,
        invalid=any(f.error for f in fields) or bool(errors),
        faulty=[f for f in fields if f.error],
    )
    return render(request, "fiche.html", context, status)


def published_raw(engine: Engine) -> tuple[fiche_versions.Version, dict[str, Any]]:
    with engine.connect() as conn:
        current = fiche_versions.published(conn)
    return current, yaml.safe_load(current.content)


@page(roles=auth.FICHE_ROLES, refused=FICHE_REFUSED)
async def fiche_page(request: Request) -> Response:
    _, raw = await run_in_threadpool(published_raw, request.app.state.engine)
    return await render_fiche_form(request, fiche_editor.fields_of(raw))


def preview_context(engine: Engine, content: str) -> dict[str, Any]:
    """The diff with the published version and the answers that change, before and after."""
    current, raw = published_raw(engine)
    before = fiche_versions.fiche_of_version(current)
    after = fiche_versions.fiche_of(content, current.number + 1, datetime.now(NOUMEA).date())
    return {
        "current": current,
        "content": content,
        "changes": fiche_editor.changed_fields(raw, yaml.safe_load(content)),
        "answers": fiche_editor.changed_answers(before, after),
        "total_answers": len(fiche_editor.answer_catalogue(after)),
    }


@form(roles=auth.FICHE_ROLES, max_fields=FICHE_FORM_FIELDS, refused=FICHE_REFUSED)
async def fiche_preview(request: Request, data: FormData) -> Response:
    engine = request.app.state.engine
    _, raw = await run_in_threadpool(published_raw, engine)
    submitted = {key: [str(v) for v in data.getlist(key)] for key in data}
    submission = await run_in_threadpool(fiche_editor.read_form, raw, submitted)
    if not submission.ok:
        return await render_fiche_form(request, submission.fields, submission.errors, status=400)
    if not fiche_editor.changed_fields(raw, submission.raw):
        return await render_fiche_form(
            request, submission.fields, ["Aucun changement par rapport à la version publiée."], status=400
        )
    context = await run_in_threadpool(preview_context, engine, submission.content)
    return render(request, "fiche_preview.html", context)


@form(roles=auth.FICHE_ROLES, refused=FICHE_REFUSED)
async def fiche_edit_again(request: Request, data: FormData) -> Response:
    _, raw = await run_in_threadpool(published_raw, request.app.state.engine)
    try:
        fields = fiche_editor.fields_with_values(raw, field(data, "content"))
    except (yaml.YAMLError, AttributeError, TypeError):
        fields = fiche_editor.fields_of(raw)
    return await render_fiche_form(request, fields)


@form(roles=auth.FICHE_ROLES, refused=FICHE_REFUSED)
async def fiche_publish(request: Request, data: FormData) -> Response:
    engine, user = request.app.state.engine, request.state.user["name"]
    content = field(data, "content")
    current, _ = await run_in_threadpool(published_raw, engine)
    error = ""
    if field(data, "base") != str(current.number):
        error = (
            f"La version {current.number} a été publiée pendant que vous prépariez ce changement : "
            "l'aperçu ci-dessous la compare maintenant à elle. Vérifiez-le avant de publier."
        )
    else:
        try:
            number = await run_in_threadpool(
                fiche_versions.publish, engine, content, user, field(data, "reason")
            )
        except (FicheError, fiche_versions.PublishError) as exc:
            error = str(exc).removeprefix("fiche: ")
        else:
            log.info("fiche: version %s published by %s", number, user)
            flash(
                request,
                f"Version {number} publiée : les serveurs d'actions la servent d'ici quelques secondes.",
            )
            return RedirectResponse("/fiche", status_code=303)
    try:
        context = await run_in_threadpool(preview_context, engine, content)
    except (FicheError, yaml.YAMLError, AttributeError, TypeError):
        return render(request, "error.html", {"title": "Publication refusée", "message": error}, 400)
    context.update(error=error, reason=field(data, "reason"))
    return render(request, "fiche_preview.html", context, 400)


@form(roles=auth.FICHE_ROLES, refused=FICHE_REFUSED)
async def fiche_rollback(request: Request, data: FormData) -> Response:
    engine, user = request.app.state.engine, request.state.user["name"]
    try:
        number = int(field(data, "version"))
    except ValueError:
        number = -1
    try:
        await run_in_threadpool(fiche_versions.rollback, engine, number, user, field(data, "reason"))
    except (FicheError, fiche_versions.PublishError) as exc:
        flash(request, str(exc).removeprefix("fiche: "), "error")
    else:
        log.info("fiche: version %s published again by %s (rollback)", number, user)
        flash(
            request, f"Version {number} rétablie : les serveurs d'actions la servent d'ici quelques secondes."
        )
    return RedirectResponse("/fiche", status_code=303)


# --- the app -------------------------------------------------------------------------------


def build_routes() -> list:
    """Every route of the console (the tests walk this list to check that each is guarded)."""
    return [
        Route("/", home),
        Route("/healthz", healthz),
        Route("/login", login_page, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/conversations", conversations_page),
        Route("/conversations/{ref:path}", conversation_page, methods=["GET", "POST"]),
        Route("/insights", insights_page),
        Route("/labels", labels_page),
        Route("/labels/export.yml", export_labels),
        Route("/desk/available", desk_available),
        Route("/direct", direct_page),
        Route("/direct/live", direct_live),
        Route("/direct/presence", direct_presence, methods=["POST"]),
        Route("/direct/take", direct_take, methods=["POST"]),
        Route("/direct/reply", direct_reply, methods=["POST"]),
        Route("/direct/release", direct_release, methods=["POST"]),
        Route("/rappels", rappels_page, methods=["GET"]),
        Route("/rappels", rappels_submit, methods=["POST"]),
        Route("/fiche", fiche_page),
        Route("/fiche/apercu", fiche_preview, methods=["POST"]),
        Route("/fiche/modifier", fiche_edit_again, methods=["POST"]),
        Route("/fiche/publier", fiche_publish, methods=["POST"]),
        Route("/fiche/retablir", fiche_rollback, methods=["POST"]),
        Route("/admin", admin_page),
        Route("/admin/purge", purge_preview_page, methods=["GET"]),
        Route("/admin/purge", purge_submit, methods=["POST"]),
        Route("/admin/erase", erase_page, methods=["GET"]),
        Route("/admin/erase", erase_submit, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def retention_purge(engine: Engine, days: int) -> dict[str, int]:
    """One run of the automatic purge (CHAT_CAGOU_RETENTION_DAYS): events older than `days`."""
    done = queries.purge(engine, queries.cutoff_for_days(days))
    log.info(
        "retention purge (%d days): %d events deleted from %d conversations (%d entirely)",
        days,
        done["events"],
        done["conversations"],
        done["whole"],
    )
    return done


async def retention_loop(engine: Engine, days: int, interval: float = RETENTION_INTERVAL) -> None:
    while True:
        try:
            await run_in_threadpool(retention_purge, engine, days)
        except Exception:
            log.exception("retention purge failed; next try in %d s", interval)
        await asyncio.sleep(interval)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    engine = make_engine(settings.db_url)
    create_tables(engine)
    log.info("console on %s", describe_url(settings.db_url))
    routes = build_routes()
    middleware = [
        Middleware(TrustedProxyHeaders, trusted=settings.trusted_proxies),
        Middleware(SecurityHeaders),
        Middleware(
            SessionMiddleware,
            secret_key=settings.secret_key,
            session_cookie=session_cookie_name(settings.cookie_secure),
            max_age=settings.session_max_age,
            path="/",
            domain=None,
            same_site="lax",
            https_only=settings.cookie_secure,
        ),
        Middleware(RequireLogin, settings=settings, engine=engine),
    ]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None
        if settings.retention_days:
            log.info("retention: events older than %d days are deleted daily", settings.retention_days)
            task = asyncio.create_task(retention_loop(engine, settings.retention_days))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.settings = settings
    app.state.engine = engine
    app.state.ref_key = ref_key(settings.secret_key)
    app.state.templates = make_templates(app.state.ref_key)
    app.state.login_throttle = auth.LoginThrottle()
    return app
