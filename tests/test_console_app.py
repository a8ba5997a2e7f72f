"""The review console in-process: Starlette's TestClient on `console.app.create_app`, over a
temporary SQLite database that holds Rasa's `events` table as Rasa 3.6's SQLTrackerStore
writes it (rows made from Rasa's own event classes, mapped to columns as its `save` does).

No trained model, no server process, no PostgreSQL: this runs in the fast tier. The same
behaviour against conversations from the running assistant is in tests/test_console.py.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
import yaml
from rasa.shared.core.events import ActionExecuted, BotUttered, Event, SessionStarted, UserUttered
from starlette.testclient import TestClient

from console import auth, queries
from console.app import (
    CSP,
    HOST_COOKIE_PREFIX,
    PUBLIC_PATHS,
    SESSION_COOKIE,
    build_routes,
    create_app,
    ref_key,
)
from console.config import Settings
from console.db import create_tables
from console.domain import plain_text
from console.masking import EMAIL_MASK, PHONE_MASK

ROOT = Path(__file__).resolve().parent.parent
BASE_URL = "https://console.test"  # the production cookie is Secure: the client must speak https
SECRET = secrets.token_urlsafe(48)
ADMIN = ("alice", "mot-de-passe-admin-1")
VIEWER = ("victor", "mot-de-passe-lecteur-1")
PHONE, EMAIL = "78 12 34", "jean.dupont@example.nc"
DAY = 86400
AGED_DAYS = 200
# Cost of the test accounts' password hashes only (the production cost, 2**15, is checked by
# test_console_unit.py): logins stay real, without a quarter of a second each.
FAST_SCRYPT_N = 2**10

# sender ids of the synthetic conversations, by what each is for
PUK, PII, GIBBERISH, FOLLOW_UP, OLD = (
    "rest-puk-01",
    "sio-pii-0002",
    "6021458812",
    "rest-suivi-03",
    "rest-old-04",
)
PII_TEXT = f"j'ai perdu mon téléphone, rappelez-moi au {PHONE} ou {EMAIL}"
# not in data/nlu (the export leaves out what the training data already has)
RELABEL_TEXT = "et par mail, je peux aussi arrêter mon contrat ?"

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ROW_LINK = re.compile(r'<td class="preview"><a href="/conversations/([^"#?]+)">')


# --- Rasa's events ----------------------------------------------------------------------


def user(
    text: str,
    intent: str,
    confidence: float,
    channel: str,
    ts: float,
    entities: list[dict] | None = None,
    ranking: list[tuple[str, float]] | None = None,
) -> UserUttered:
    """A customer message as Rasa 3.6 stores it (parse_data from the NLU pipeline)."""
    ranking = ranking or [(intent, confidence)]
    parse_data = {
        "intent": {"name": intent, "confidence": confidence},
        "entities": entities or [],
        "text": text,
        "message_id": secrets.token_hex(16),
        "metadata": {},
        "intent_ranking": [{"name": n, "confidence": c} for n, c in ranking],
    }
    return UserUttered(
        text,
        parse_data["intent"],
        parse_data["entities"],
        parse_data=parse_data,
        timestamp=ts,
        input_channel=channel,
        message_id=parse_data["message_id"],
    )


def entity(text: str, word: str, name: str) -> dict:
    start = text.index(word)
    return {
        "entity": name,
        "start": start,
        "end": start + len(word),
        "value": word,
        "extractor": "DIETClassifier",
    }


def turn(ts: float, *actions: str) -> list[Event]:
    return [ActionExecuted(name, policy="RulePolicy", confidence=1.0, timestamp=ts) for name in actions]


def conversations(now: float) -> dict[str, list[Event]]:
    def start(ts: float) -> list[Event]:
        return [
            ActionExecuted("action_session_start", timestamp=ts),
            SessionStarted(timestamp=ts),
            ActionExecuted("action_listen", timestamp=ts),
        ]

    t = now - 3600  # all of them an hour ago or later, but OLD
    follow_up_text = "je voudrais résilier mon abonnement"
    return {
        PUK: [
            *start(t),
            user("bonjour", "greet", 0.99, "rest", t + 1),
            *turn(t + 2, "utter_greet"),
            BotUttered("Bonjour ! Que puis-je faire pour vous ?", {}, {"utter_action": "utter_greet"}, t + 2),
            *turn(t + 2, "action_listen"),
            user("code PUK svp", "code_puk", 0.97, "rest", t + 10),
            *turn(t + 11, "action_repondre"),
            BotUttered("Votre code PUK est sur la carte SIM d'origine.", {}, {}, t + 11),
            *turn(t + 11, "action_listen"),
        ],
        PII: [
            *start(t + 100),
            user(
                PII_TEXT,
                "perte_vol",
                0.91,
                "socketio",
                t + 101,
                # a piece of the phone number taken for an entity: masked in the transcript
                entities=[entity(PII_TEXT, "78", "service")],
            ),
            *turn(t + 102, "action_repondre"),
            BotUttered("En cas de perte ou de vol, appelez le 1000.", {}, {}, t + 102),
        ],
        GIBBERISH: [
            *start(t + 200),
            # Rasa's FallbackClassifier: nlu_fallback at the threshold, the classifier's
            # own best guess next in the ranking
            user(
                "xqzw blorf grumpf",
                "nlu_fallback",
                0.4,
                "facebook",
                t + 201,
                ranking=[("nlu_fallback", 0.4), ("greet", 0.21), ("thanks", 0.12)],
            ),
            *turn(t + 202, "action_clarifier"),
            BotUttered(
                "Je n'ai pas bien compris. Vous parlez de :",
                {"buttons": [{"title": "Code PUK", "payload": "/code_puk"}]},
                {},
                t + 202,
            ),
        ],
        FOLLOW_UP: [
            *start(t + 300),
            user(follow_up_text, "resiliation", 0.88, "rest", t + 301),
            *turn(t + 302, "action_repondre"),
            BotUttered("Pour résilier, écrivez au service clientèle.", {}, {}, t + 302),
            user(
                RELABEL_TEXT,
                "preciser_canal",
                0.42,
                "rest",
                t + 310,
                entities=[entity(RELABEL_TEXT, "mail", "canal")],
                ranking=[("preciser_canal", 0.42), ("resiliation", 0.38)],
            ),
            *turn(t + 311, "action_repondre"),
            BotUttered("Oui, par mail à 1000@opt.nc.", {}, {}, t + 311),
        ],
        OLD: [
            *start(now - AGED_DAYS * DAY),
            user(
                "je voudrais changer de forfait", "changement_offre", 0.93, "rest", now - AGED_DAYS * DAY + 1
            ),
            BotUttered("Voici les offres Mobilis Pro.", {}, {}, now - AGED_DAYS * DAY + 2),
        ],
    }


# Rasa's table, as rasa/core/tracker_store.py (SQLTrackerStore.SQLEvent) creates it
EVENTS_DDL = (
    "CREATE TABLE events (id INTEGER NOT NULL PRIMARY KEY, sender_id VARCHAR(255) NOT NULL, "
    "type_name VARCHAR(255) NOT NULL, timestamp FLOAT, intent_name VARCHAR(255), "
    "action_name VARCHAR(255), data TEXT)",
    "CREATE INDEX ix_events_sender_id ON events (sender_id)",
)


def store(engine: sa.engine.Engine, sender_id: str, events: list[Event]) -> None:
    """What SQLTrackerStore.save writes for each event."""
    with engine.begin() as conn:
        for event in events:
            data = event.as_dict()
            conn.execute(
                sa.text(
                    "INSERT INTO events (sender_id, type_name, timestamp, intent_name, action_name, data) "
                    "VALUES (:sender_id, :type_name, :timestamp, :intent_name, :action_name, :data)"
                ),
                dict(
                    sender_id=sender_id,
                    type_name=event.type_name,
                    timestamp=data.get("timestamp"),
                    intent_name=data.get("parse_data", {}).get("intent", {}).get("name"),
                    action_name=data.get("name"),
                    data=json.dumps(data),
                ),
            )


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Events and the two staff accounts, built once; each test works on a copy."""
    path = tmp_path_factory.mktemp("console") / "tracker.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        for statement in EVENTS_DDL:
            conn.execute(sa.text(statement))
    for sender_id, events in conversations(time.time()).items():
        store(engine, sender_id, events)
    create_tables(engine)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(auth, "SCRYPT_N", FAST_SCRYPT_N)
        auth.upsert_user(engine, ADMIN[0], "admin", ADMIN[1])
        auth.upsert_user(engine, VIEWER[0], "viewer", VIEWER[1])
    engine.dispose()
    return path


def console_app(db_path: Path, **settings_fields: Any):
    settings = Settings(
        db_url=f"sqlite:///{db_path}",
        secret_key=SECRET,
        dev=False,
        cookie_secure=True,
        domain_path=ROOT / "domain.yml",
        data_path=ROOT / "data",
        **settings_fields,
    )
    return create_app(settings)


@pytest.fixture
def db_path(template_db: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tracker.db"
    shutil.copyfile(template_db, path)
    return path


@pytest.fixture
def engine(db_path: Path) -> Iterator[sa.engine.Engine]:
    engine = sa.create_engine(f"sqlite:///{db_path}")
    yield engine
    engine.dispose()


@pytest.fixture
def app(db_path: Path):
    app = console_app(db_path)
    yield app
    app.state.engine.dispose()


@pytest.fixture
def client(app) -> Iterator[TestClient]:
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        yield client


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def login(client: TestClient, who: tuple[str, str], next_path: str = "/conversations"):
    token = csrf_of(client.get("/login").text)
    return client.post(
        "/login", data={"csrf_token": token, "name": who[0], "password": who[1], "next": next_path}
    )


@pytest.fixture
def admin(client: TestClient) -> TestClient:
    assert login(client, ADMIN).status_code == 303
    return client


@pytest.fixture
def viewer(client: TestClient) -> TestClient:
    assert login(client, VIEWER).status_code == 303
    return client


@pytest.fixture(scope="module")
def reader(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    """An admin's client on a database no test of it changes: for the pages that only read."""
    path = tmp_path_factory.mktemp("reader") / "tracker.db"
    shutil.copyfile(template_db, path)
    app = console_app(path)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as client:
        assert login(client, ADMIN).status_code == 303
        yield client
    app.state.engine.dispose()


def listed(client: TestClient, **params: str) -> list[str]:
    """The sender ids of the conversation list, in its order, for these filters (the links
    carry references only: the console's own table maps them back)."""
    page = client.get("/conversations", params=params)
    assert page.status_code == 200, page.text[:500]
    engine = client.app.state.engine  # type: ignore[attr-defined]
    return [queries.sender_of_ref(engine, ref) or ref for ref in ROW_LINK.findall(page.text)]


def post_form(client: TestClient, page_path: str, action: str, **fields: str):
    """Submits a form of `page_path` to `action` with the page's CSRF token."""
    token = csrf_of(client.get(page_path).text)
    return client.post(action, data={"csrf_token": token, **fields})


def conversation_path(sender_id: str) -> str:
    """The page of a conversation, by its reference (an HMAC of the sender id)."""
    return "/conversations/" + queries.conversation_ref(ref_key(SECRET), sender_id)


def user_event_id(engine: sa.engine.Engine, sender_id: str, text: str) -> int:
    with engine.connect() as conn:
        for event_id, data in conn.execute(
            sa.text("SELECT id, data FROM events WHERE sender_id = :s AND type_name = 'user'"),
            {"s": sender_id},
        ):
            if json.loads(data)["text"] == text:
                return event_id
    raise AssertionError(f"no message {text!r} in {sender_id}")


# --- login, sessions, headers -----------------------------------------------------------


def test_login_page_health_and_security_headers(client):
    page = client.get("/login")
    assert page.status_code == 200
    assert "<h1>Connexion</h1>" in page.text and 'name="password" type="password"' in page.text
    assert len(csrf_of(page.text)) >= 32
    headers = page.headers
    assert headers["content-security-policy"] == CSP
    assert headers["x-frame-options"] == "DENY"
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["referrer-policy"] == "same-origin"
    assert headers["cross-origin-opener-policy"] == "same-origin"
    assert headers["cache-control"] == "no-store"
    assert client.get("/healthz").text == "ok"
    # static files may be cached, but get the other headers
    css = client.get("/static/console.css")
    assert css.status_code == 200 and "no-store" not in css.headers.get("cache-control", "")
    assert css.headers["x-content-type-options"] == "nosniff"


def test_wrong_password_or_missing_token_is_refused(client):
    wrong = login(client, (ADMIN[0], "pas-le-bon-mot-de-passe"))
    assert wrong.status_code == 401
    assert "Nom ou mot de passe incorrect." in wrong.text
    unknown = login(client, ("personne", ADMIN[1]))
    assert unknown.status_code == 401 and "Nom ou mot de passe incorrect." in unknown.text
    # the right password without the form's token
    no_token = client.post("/login", data={"name": ADMIN[0], "password": ADMIN[1]})
    assert no_token.status_code == 403 and "Formulaire refusé" in no_token.text
    still_out = client.get("/conversations")
    assert still_out.status_code == 303 and still_out.headers["location"].startswith("/login")


def test_login_sets_a_secure_session_and_goes_to_the_page_asked_for(client):
    done = login(client, ADMIN, next_path="/insights")
    assert done.status_code == 303 and done.headers["location"] == "/insights"
    cookie = done.headers["set-cookie"].lower()
    # production (Secure) cookie: the __Host- name, Path=/ and no Domain
    assert cookie.startswith((HOST_COOKIE_PREFIX + SESSION_COOKIE).lower() + "=")
    assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
    assert "path=/;" in cookie and "domain" not in cookie
    page = client.get("/insights")
    assert page.status_code == 200
    assert "alice" in page.text and "administrateur" in page.text
    # last 30 days: four conversations, 2 + 1 + 1 + 2 customer messages (the aged one is older)
    assert "<strong>6</strong><span>messages clients</span>" in page.text
    assert "<strong>4</strong><span>conversations</span>" in page.text


def test_login_never_redirects_off_site(client):
    done = login(client, ADMIN, next_path="//evil.example/phish")
    assert done.status_code == 303 and done.headers["location"] == "/conversations"


@pytest.mark.parametrize(
    "path",
    sorted(
        {
            route.path.replace("{ref:path}", PUK)
            for route in build_routes()
            if getattr(route, "methods", None) and route.path not in (*PUBLIC_PATHS, "/logout")
        }
    ),
)
def test_every_page_needs_a_session(client, path):
    page = client.get(path, params={"days": "1"})
    assert page.status_code == 303
    assert page.headers["location"].startswith("/login?next=" + quote(path, safe=""))
    assert page.content == b""


def test_forms_need_a_session(client):
    # a valid CSRF token of an anonymous session does not make a form acceptable
    token = csrf_of(client.get("/login").text)
    for path, fields in (
        (conversation_path(PUK), {"op": "tag", "tag": "x"}),
        ("/admin/purge", {"days": "0", "cutoff": str(time.time()), "confirm": "yes"}),
        ("/logout", {}),
    ):
        refused = client.post(path, data={"csrf_token": token, **fields})
        assert refused.status_code == 403 and refused.text == "Connexion requise.", path


def test_logout_ends_the_session(admin):
    assert admin.get("/conversations").status_code == 200
    out = post_form(admin, "/conversations", "/logout")
    assert out.status_code == 303 and out.headers["location"] == "/login"
    again = admin.get("/conversations")
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


def test_a_new_password_ends_the_open_sessions(admin, app, monkeypatch):
    assert admin.get("/conversations").status_code == 200
    monkeypatch.setattr(auth, "SCRYPT_N", FAST_SCRYPT_N)
    auth.upsert_user(app.state.engine, ADMIN[0], "admin", "un-tout-nouveau-mot-de-passe")
    assert admin.get("/conversations").status_code == 303


# --- list, filters, transcript ----------------------------------------------------------


def test_list_shows_every_conversation_newest_first_with_contact_details_masked(reader):
    page = reader.get("/conversations")
    assert "5 trouvées" in page.text
    assert listed(reader) == [FOLLOW_UP, GIBBERISH, PII, PUK, OLD]
    assert PHONE not in page.text and EMAIL not in page.text
    assert f"rappelez-moi au {PHONE_MASK} ou {EMAIL_MASK}" in page.text
    assert "bonjour" in page.text and "xqzw blorf grumpf" in page.text  # first messages as previews


FILTER_CASES = [
    ({"channel": "socketio"}, [PII]),
    ({"channel": "facebook"}, [GIBBERISH]),
    ({"intent": "code_puk"}, [PUK]),
    ({"intent": "resiliation"}, [FOLLOW_UP]),
    ({"below": "0.5"}, [FOLLOW_UP, GIBBERISH]),  # 0.42, and the fallback's best guess 0.21
    ({"below": "0,3"}, [GIBBERISH]),
    ({"flag": "fallback"}, [GIBBERISH]),
    ({"q": "RESILIER"}, [FOLLOW_UP]),  # case and accents folded
    ({"q": PHONE}, []),  # masked before it is indexed: not searchable
    ({"channel": "rest", "intent": "greet"}, [PUK]),
]


@pytest.mark.parametrize(
    ("params", "expected"), FILTER_CASES, ids=[urlencode(params) for params, _ in FILTER_CASES]
)
def test_filters(reader, params, expected):
    assert listed(reader, **params) == expected


def test_a_wrong_filter_value_is_reported(reader):
    page = reader.get("/conversations", params={"below": "2"})
    assert page.status_code == 200
    assert "Le seuil de confiance doit être un nombre entre 0 et 1." in page.text
    assert "5 trouvées" in page.text  # the wrong filter is ignored


def test_transcript_shows_intents_confidence_and_entities(reader):
    page = reader.get(conversation_path(FOLLOW_UP)).text
    assert "je voudrais résilier mon abonnement" in page
    assert "<code>resiliation</code>" in page and ">0.88</span>" in page
    assert "<code>preciser_canal</code>" in page and '<span class="conf low">0.42</span>' in page
    assert "puis resiliation 0.38" in page  # the next intent of the ranking
    assert "<code>canal=mail</code>" in page
    assert "Oui, par mail à 1000@opt.nc." in page  # the bot's answers are not masked
    assert "action <code>action_repondre</code>" in page
    assert "action_listen" not in page  # noise for the reader
    fallback = reader.get(conversation_path(GIBBERISH)).text
    assert "<code>nlu_fallback</code>" in fallback
    assert '<code>greet</code> <span class="conf low">0.21</span>' in fallback  # its best guess
    assert '<span class="button">Code PUK</span>' in fallback
    assert 'class="channel">facebook</span>' in fallback


def test_transcript_masks_contact_details_even_in_entities(reader):
    page = reader.get(conversation_path(PII)).text
    assert PHONE not in page and EMAIL not in page
    assert f"{PHONE_MASK} ou {EMAIL_MASK}" in page
    assert "<code>service=‹masqué›</code>" in page  # '78', a piece of the phone number


def test_unknown_conversation_is_404(reader):
    page = reader.get(conversation_path("nobody-here"))
    assert page.status_code == 404 and "Conversation introuvable" in page.text


# --- staff work -------------------------------------------------------------------------


def test_tag_note_and_review(admin):
    path = conversation_path(PUK)
    for fields in (
        {"op": "tag", "tag": "à revoir"},
        {"op": "note", "text": "Rappeler le client demain."},
        {"op": "review"},
    ):
        done = post_form(admin, path, path, **fields)
        assert done.status_code == 303 and done.headers["location"] == path, fields
    page = admin.get(path).text
    assert '<span class="tag">à revoir' in page
    assert "<p>Rappeler le client demain.</p><footer>alice," in page
    assert "Revue par alice" in page
    assert listed(admin, tag="à revoir") == [PUK]
    assert listed(admin, reviewed="yes") == [PUK]
    assert PUK not in listed(admin, reviewed="no")
    assert post_form(admin, path, path, op="untag", tag="à revoir").status_code == 303
    assert listed(admin, tag="à revoir") == []


def test_a_form_without_its_csrf_token_is_refused(admin, engine):
    path = conversation_path(PUK)
    for token in (None, "", "forged-token"):
        fields = {"op": "tag", "tag": "pirate"}
        if token is not None:
            fields["csrf_token"] = token
        refused = admin.post(path, data=fields)
        assert refused.status_code == 403, token
        assert "Le jeton de sécurité du formulaire manque ou a expiré." in refused.text
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM console_tags")).scalar() == 0


def test_relabel_then_export_gives_nlu_yaml_with_the_example(admin, engine):
    path = conversation_path(FOLLOW_UP)
    event_id = user_event_id(engine, FOLLOW_UP, RELABEL_TEXT)
    done = post_form(admin, path, path, op="label", event_id=str(event_id), intent="resiliation")
    assert done.status_code == 303 and done.headers["location"] == f"{path}#m{event_id}"
    page = admin.get(path).text
    assert "Message réétiqueté : resiliation." in page
    assert "Réétiqueté en <code>resiliation</code> par alice" in page
    labels = admin.get("/labels").text
    assert RELABEL_TEXT.replace("'", "&#39;") in labels and "<code>preciser_canal</code>" in labels

    # the PII message too: its export must be masked
    pii_id = user_event_id(engine, PII, PII_TEXT)
    pii_path = conversation_path(PII)
    assert (
        post_form(admin, pii_path, pii_path, op="label", event_id=str(pii_id), intent="perte_vol").status_code
        == 303
    )

    export = admin.get("/labels/export.yml")
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("application/x-yaml")
    assert export.headers["content-disposition"].startswith('attachment; filename="console_export_')
    assert PHONE not in export.text and EMAIL not in export.text
    nlu = yaml.safe_load(export.text)
    assert nlu["version"] == "3.1"
    examples = {block["intent"]: block["examples"].splitlines() for block in nlu["nlu"]}
    # the entity the model found, on a text data/ annotates so, is kept as an annotation
    expected = RELABEL_TEXT.replace("mail", "[mail](canal)")
    assert examples["resiliation"] == [f"- {expected}"]
    assert plain_text(expected) == RELABEL_TEXT
    assert examples["perte_vol"] == [
        f"- j'ai perdu mon téléphone, rappelez-moi au {PHONE_MASK} ou {EMAIL_MASK}"
    ]


def test_relabel_refuses_unknown_intents_and_messages(admin, engine):
    path = conversation_path(FOLLOW_UP)
    event_id = user_event_id(engine, FOLLOW_UP, RELABEL_TEXT)
    unknown_intent = post_form(admin, path, path, op="label", event_id=str(event_id), intent="pirater")
    assert unknown_intent.status_code == 400 and "Intention inconnue du domaine." in unknown_intent.text
    # a message of another conversation
    other = user_event_id(engine, PUK, "bonjour")
    wrong_message = post_form(admin, path, path, op="label", event_id=str(other), intent="greet")
    assert wrong_message.status_code == 404 and "Message inconnu." in wrong_message.text
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM console_labels")).scalar() == 0


# --- roles and purge --------------------------------------------------------------------


def test_a_viewer_reviews_but_cannot_export_or_purge(viewer, engine):
    page = viewer.get("/conversations").text
    assert "victor" in page and "lecteur" in page
    assert 'href="/admin"' not in page
    for path in ("/admin", "/admin/purge?days=90", "/labels/export.yml"):
        refused = viewer.get(path)
        assert refused.status_code == 403 and "réservée aux administrateurs" in refused.text, path
    assert "L'export est réservé aux administrateurs." in viewer.get("/labels").text.replace("&#39;", "'")
    cutoff = time.time() - 90 * DAY
    purge = post_form(viewer, "/conversations", "/admin/purge", days="90", cutoff=str(cutoff), confirm="yes")
    assert purge.status_code == 403 and "Cette action est réservée aux administrateurs." in purge.text
    with engine.connect() as conn:
        assert (
            conn.execute(sa.text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": OLD}).scalar()
            == 5
        )
    # staff work on conversations is for every role (the code's rule: only export, purge
    # and the admin page are the admins')
    path = conversation_path(PUK)
    assert post_form(viewer, path, path, op="tag", tag="traité").status_code == 303
    assert listed(viewer, tag="traité") == [PUK]


def test_purge_shows_the_count_then_deletes_after_confirmation(admin, engine):
    preview = admin.get("/admin/purge", params={"days": "90"})
    assert preview.status_code == 200
    assert "<strong>5</strong> événement(s) antérieurs au" in preview.text
    assert "dans <strong>1</strong> conversation(s)" in preview.text
    cutoff = re.search(r'name="cutoff" value="([^"]+)"', preview.text).group(1)
    token = csrf_of(preview.text)
    unconfirmed = admin.post("/admin/purge", data={"csrf_token": token, "days": "90", "cutoff": cutoff})
    assert unconfirmed.status_code == 400 and "Purge non confirmée." in unconfirmed.text
    # a cutoff that is not the preview's (a forged form purging everything)
    forged = admin.post(
        "/admin/purge",
        data={"csrf_token": token, "days": "90", "cutoff": str(time.time()), "confirm": "yes"},
    )
    assert forged.status_code == 400 and "Purge non confirmée." in forged.text
    assert OLD in listed(admin)

    done = admin.post(
        "/admin/purge", data={"csrf_token": token, "days": "90", "cutoff": cutoff, "confirm": "yes"}
    )
    assert done.status_code == 200
    assert "Supprimé : 5 événement(s) de 1 conversation(s), dont 1 entièrement." in done.text
    with engine.connect() as conn:
        left = dict(conn.execute(sa.text("SELECT sender_id, count(*) FROM events GROUP BY sender_id")).all())
    assert OLD not in left and set(left) == {PUK, PII, GIBBERISH, FOLLOW_UP}
    assert listed(admin) == [FOLLOW_UP, GIBBERISH, PII, PUK]
    assert "Rien à supprimer." in admin.get("/admin/purge", params={"days": "90"}).text
