"""The console's hardening (issue 13) in-process, in the style of tests/test_console_app.py
(its fixtures and synthetic conversations): bad input never gives a 500, the login
throttle and sessions, retention by event age, erasing one customer, sender ids masked."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
import sqlalchemy as sa
from rasa.shared.core.events import BotUttered
from starlette.testclient import TestClient

from console import auth, queries
from console.__main__ import main as console_main
from console.app import ref_key
from console.config import ConfigError, Settings
from console.masking import PHONE_MASK, mask
from tests import test_console_app as base
from tests.test_console_app import (
    ADMIN,
    BASE_URL,
    DAY,
    EMAIL,
    FOLLOW_UP,
    GIBBERISH,
    OLD,
    PHONE,
    PII,
    PII_TEXT,
    PUK,
    console_app,
    conversation_path,
    csrf_of,
    listed,
    login,
    post_form,
    user_event_id,
)

# the fixtures of tests/test_console_app.py, on a fresh copy of its database for each test
template_db, db_path, engine, app, client, admin = (
    base.template_db,
    base.db_path,
    base.engine,
    base.app,
    base.client,
    base.admin,
)

# --- never a 500 from bad input -------------------------------------------------------

BAD_FILTERS = [
    {"date_to": "9999-12-31"},
    {"date_from": "0001-01-01"},
    {"date_from": "2024-13-45"},
    {"date_to": "x" * 5000},
    {"below": "nan"},
    {"below": "inf"},
    {"below": "-1e999"},
    {"page": "9" * 5000},
    {"page": "-3"},
    {"q": "a\x00b"},
    {"tag": "\x00"},
    {"flag": "pirate"},
    {"reviewed": "peut-être"},
]


@pytest.mark.parametrize("params", BAD_FILTERS, ids=[str(i) for i in range(len(BAD_FILTERS))])
def test_a_malformed_filter_never_gives_a_500(admin, params):
    page = admin.get("/conversations", params=params)
    assert page.status_code in (200, 400), page.text[:300]


def test_out_of_range_dates_are_reported_not_crashed(admin):
    page = admin.get("/conversations", params={"date_to": "9999-12-31"})
    assert page.status_code == 200
    assert "Date hors limites : 9999-12-31" in page.text


@pytest.mark.parametrize("path", ["/insights", "/admin/purge", "/admin"])
@pytest.mark.parametrize("days", ["nan", "inf", "9" * 5000, "-1", "1e9", ""])
def test_malformed_days_never_give_a_500(admin, path, days):
    assert admin.get(path, params={"days": days}).status_code in (200, 400)


@pytest.mark.parametrize("event_id", [str(10**30), "-1", "0", "nan", "1e3", "9" * 5000])
def test_relabel_with_a_huge_or_malformed_event_id_is_400(admin, engine, event_id):
    path = conversation_path(FOLLOW_UP)
    done = post_form(admin, path, path, op="label", event_id=event_id, intent="resiliation")
    assert done.status_code == 400 and "Message inconnu." in done.text


@pytest.mark.parametrize("cutoff", ["nan", "NaN", "inf", "-inf", "1e999"])
def test_purge_refuses_a_non_finite_cutoff(admin, engine, cutoff):
    before = count_events(engine)
    done = post_form(admin, "/admin", "/admin/purge", days="90", cutoff=cutoff, confirm="yes")
    assert done.status_code == 400
    assert count_events(engine) == before


def test_purge_refuses_an_absurd_duration(admin, engine):
    before = count_events(engine)
    for days in ("-5", str(10**30)):
        cutoff = str(time.time() - 90 * DAY)
        done = post_form(admin, "/admin", "/admin/purge", days=days, cutoff=cutoff, confirm="yes")
        assert done.status_code == 400, days
    assert count_events(engine) == before


def test_forms_with_nul_characters_are_not_a_500(admin):
    path = conversation_path(PUK)
    for fields in ({"op": "tag", "tag": "a\x00b"}, {"op": "note", "text": "\x00x"}):
        assert post_form(admin, path, path, **fields).status_code == 303


def count_events(engine: sa.engine.Engine, sender_id: str | None = None) -> int:
    with engine.connect() as conn:
        if sender_id is None:
            return conn.execute(sa.text("SELECT count(*) FROM events")).scalar()
        return conn.execute(
            sa.text("SELECT count(*) FROM events WHERE sender_id = :s"), {"s": sender_id}
        ).scalar()


# --- login: throttle, hashing, sessions, logs, proxies --------------------------------

ATTACKER, OFFICE, PROXY = "203.0.113.66", "198.51.100.7", "10.0.0.2"


def client_at(app, address: str, forwarded_for: str | None = None) -> TestClient:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    return TestClient(
        app, base_url=BASE_URL, follow_redirects=False, client=(address, 40000), headers=headers
    )


def test_parallel_wrong_passwords_cannot_pass_the_throttle(client, monkeypatch):
    """Each attempt is counted before its hash: 12 parallel POSTs cannot all be checked."""
    checked = []

    def slow_check(engine, name, password):
        checked.append(name)
        time.sleep(0.2)
        return None, True

    monkeypatch.setattr(auth, "check_login", slow_check)
    token = csrf_of(client.get("/login").text)

    def attempt(i: int) -> int:
        data = {"csrf_token": token, "name": ADMIN[0], "password": f"essai-{i}", "next": "/"}
        return client.post("/login", data=data).status_code

    with ThreadPoolExecutor(max_workers=12) as pool:
        codes = list(pool.map(attempt, range(12)))
    free = auth.LoginThrottle().free
    assert len(checked) <= free
    assert codes.count(429) >= 12 - free and set(codes) <= {401, 429}


def test_at_most_two_password_hashes_at_once(monkeypatch):
    running, most = [0], [0]
    lock = threading.Lock()
    real_scrypt = hashlib.scrypt

    def counting_scrypt(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.05)
        with lock:
            running[0] -= 1
        return real_scrypt(*args, **{**kwargs, "n": 2**4})

    stored = auth.hash_password("un-mot-de-passe-1")
    monkeypatch.setattr(hashlib, "scrypt", counting_scrypt)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: auth.verify_password("autre-chose-1", stored), range(8)))
    assert most[0] == auth.HASH_SLOTS == 2


def test_throttle_delays_grow_per_name_and_address():
    throttle = auth.LoginThrottle(free=3, base_delay=1.0, max_delay=900.0)
    now = 1000.0
    for _ in range(3):
        assert throttle.attempt("alice", ATTACKER, now) == 0
    waits = []
    for _ in range(6):
        wait = throttle.attempt("alice", ATTACKER, now)
        assert wait > 0  # refused: not counted, no hash
        now += wait
        assert throttle.attempt("alice", ATTACKER, now) == 0
        waits.append(wait)
    assert waits == [1, 2, 4, 8, 16, 32]
    # the same name from another address is not slowed down at all
    assert throttle.attempt("Alice", OFFICE, now) == 0


def test_throttle_memory_is_bounded():
    throttle = auth.LoginThrottle(max_keys=100)
    for i in range(5000):
        throttle.attempt(f"name-{i}", f"10.{i // 250}.{i % 250}.1", 1000.0)
    assert len(throttle) <= 200


def test_a_known_name_cannot_be_locked_out_by_someone_else(app):
    with client_at(app, ATTACKER) as attacker:
        codes = [login(attacker, (ADMIN[0], f"devine-{i}")).status_code for i in range(10)]
    assert codes[:3] == [401] * 3 and 429 in codes
    with client_at(app, OFFICE) as office:
        assert login(office, ADMIN).status_code == 303


def test_forwarded_for_is_believed_only_from_a_trusted_proxy(db_path):
    settings_app = console_app(db_path, trusted_proxies=(PROXY,))
    try:
        # through the trusted proxy: the attacker is throttled, the office is not
        with client_at(settings_app, PROXY, ATTACKER) as attacker:
            for i in range(6):
                login(attacker, (ADMIN[0], f"devine-{i}"))
            assert "Trop d&#39;essais" in login(attacker, ADMIN).text
        with client_at(settings_app, PROXY, f"{OFFICE}, {PROXY}") as office:
            assert login(office, ADMIN).status_code == 303
        # from anyone else, a forged X-Forwarded-For changes nothing: the peer is counted
        for forged in ("1.1.1.1", "2.2.2.2", "3.3.3.3", "4.4.4.4", "5.5.5.5"):
            with client_at(settings_app, ATTACKER, forged) as liar:
                login(liar, (ADMIN[0], "encore-faux-1"))
        with client_at(settings_app, ATTACKER, "6.6.6.6") as liar:
            assert login(liar, ADMIN).status_code == 429
    finally:
        settings_app.state.engine.dispose()


def test_logout_revokes_the_session_on_the_server(admin):
    stolen = dict(admin.cookies)
    assert post_form(admin, "/conversations", "/logout").status_code == 303
    # the cookie as it was before logout (copied, replayed) no longer opens anything
    admin.cookies.clear()
    for name, value in stolen.items():
        admin.cookies.set(name, value)
    again = admin.get("/conversations")
    assert again.status_code == 303 and again.headers["location"].startswith("/login")


def test_production_cookie_has_the_host_prefix(client):
    done = login(client, ADMIN)
    cookie = done.headers["set-cookie"]
    assert cookie.startswith("__Host-chat_cagou_console=")
    assert "; path=/;" in cookie.lower() and "secure" in cookie.lower() and "domain=" not in cookie.lower()


def test_a_failed_name_that_may_be_a_password_is_never_logged(client, caplog):
    typed_in_the_name_field = "MonVraiMotDePasse!2026"
    with caplog.at_level(logging.INFO, logger="console"):
        login(client, (typed_in_the_name_field, "x"))
        login(client, (ADMIN[0], "pas-le-bon-mot-de-passe"))
    assert typed_in_the_name_field not in caplog.text
    assert "unknown name (22 characters)" in caplog.text
    assert "failed login for 'alice'" in caplog.text


# --- personal data: retention by event age --------------------------------------------

MONTHLY = "fb:7310000000000042"  # a Messenger customer who writes once in a while
MONTHLY_OLD_TEXT = "bonjour, ma facture de janvier"
MONTHLY_NEW_TEXT = "et celle de ce mois-ci ?"


def add_monthly_customer(engine: sa.engine.Engine) -> None:
    """Old messages (200 days ago) and new ones (an hour ago) in one conversation."""
    now = time.time()
    old, new = now - 200 * DAY, now - 3600
    base.store(
        engine,
        MONTHLY,
        [
            base.user(MONTHLY_OLD_TEXT, "facture", 0.9, "facebook", old),
            BotUttered("Votre facture est dans l'espace client.", {}, {}, old + 1),
            base.user(MONTHLY_NEW_TEXT, "facture", 0.4, "facebook", new),
            BotUttered("La facture du mois arrive le 5.", {}, {}, new + 1),
        ],
    )


def test_purge_deletes_old_events_even_in_an_active_conversation(admin, engine):
    add_monthly_customer(engine)
    path = conversation_path(MONTHLY)
    old_id = user_event_id(engine, MONTHLY, MONTHLY_OLD_TEXT)
    assert post_form(admin, path, path, op="label", event_id=str(old_id), intent="greet").status_code == 303
    assert post_form(admin, path, path, op="tag", tag="facture").status_code == 303
    preview = admin.get("/admin/purge", params={"days": "90"})
    # OLD's 5 events, and the 2 old ones of MONTHLY; OLD alone goes entirely
    assert "<strong>7</strong> événement(s)" in preview.text
    assert "dans <strong>2</strong> conversation(s)" in preview.text
    cutoff = re.search(r'name="cutoff" value="([^"]+)"', preview.text).group(1)
    done = post_form(admin, "/admin", "/admin/purge", days="90", cutoff=cutoff, confirm="yes")
    assert "Supprimé : 7 événement(s) de 2 conversation(s), dont 1 entièrement." in done.text
    with engine.connect() as conn:
        texts = [
            json.loads(d).get("text")
            for (d,) in conn.execute(sa.text("SELECT data FROM events WHERE sender_id = :s"), {"s": MONTHLY})
        ]
        labels = conn.execute(sa.text("SELECT count(*) FROM console_labels")).scalar()
    assert MONTHLY_OLD_TEXT not in texts and MONTHLY_NEW_TEXT in texts
    assert labels == 0  # the relabelled message is gone
    assert count_events(engine, OLD) == 0
    # the conversation stays, its summary rebuilt from what is left
    assert MONTHLY in listed(admin) and OLD not in listed(admin)
    assert listed(admin, tag="facture") == [MONTHLY]
    page = admin.get(path).text
    assert MONTHLY_NEW_TEXT.replace("'", "&#39;") in page and MONTHLY_OLD_TEXT not in page
    assert "1 message(s) client" in page


def test_the_console_purges_daily_when_retention_is_set(db_path, engine):
    add_monthly_customer(engine)
    retained = console_app(db_path, retention_days=90)
    try:
        with TestClient(retained, base_url=BASE_URL):
            deadline = time.monotonic() + 10
            while count_events(engine, OLD) and time.monotonic() < deadline:
                time.sleep(0.05)
        assert count_events(engine, OLD) == 0
        assert count_events(engine, MONTHLY) == 2  # the recent half stays
        assert count_events(engine, PUK) > 0
    finally:
        retained.state.engine.dispose()


def test_retention_days_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CONSOLE_DB_URL", f"sqlite:///{tmp_path / 'x.db'}")
    monkeypatch.delenv("CHAT_CAGOU_RETENTION_DAYS", raising=False)
    assert Settings.from_env(dev=True).retention_days is None
    monkeypatch.setenv("CHAT_CAGOU_RETENTION_DAYS", "180")
    assert Settings.from_env(dev=True).retention_days == 180
    for wrong in ("0", "abc", "nan", "-5"):
        monkeypatch.setenv("CHAT_CAGOU_RETENTION_DAYS", wrong)
        with pytest.raises(ConfigError):
            Settings.from_env(dev=True)
    monkeypatch.setenv("CHAT_CAGOU_RETENTION_DAYS", "")
    monkeypatch.setenv("CONSOLE_TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.1")
    assert Settings.from_env(dev=True).trusted_proxies == ("10.0.0.0/8", "192.168.1.1")
    monkeypatch.setenv("CONSOLE_TRUSTED_PROXIES", "le-proxy")
    with pytest.raises(ConfigError):
        Settings.from_env(dev=True)


# --- personal data: erasing one customer ----------------------------------------------

CONSOLE_TABLES = ("console_tags", "console_notes", "console_reviews", "console_labels", "console_refs")


def rows_of(engine: sa.engine.Engine, sender_id: str) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            table: conn.execute(
                sa.text(f"SELECT count(*) FROM {table} WHERE sender_id = :s"), {"s": sender_id}
            ).scalar()
            for table in ("events", "console_conversations", "console_messages", *CONSOLE_TABLES)
        }


def staff_work_on(admin: TestClient, engine: sa.engine.Engine, sender_id: str, text: str) -> None:
    path = conversation_path(sender_id)
    event_id = user_event_id(engine, sender_id, text)
    for fields in (
        {"op": "tag", "tag": "à revoir"},
        {"op": "note", "text": "le client demande l'effacement"},
        {"op": "review"},
        {"op": "label", "event_id": str(event_id), "intent": "perte_vol"},
    ):
        assert post_form(admin, path, path, **fields).status_code == 303, fields


def test_an_admin_erases_one_customer_found_by_what_they_wrote(admin, engine, caplog):
    staff_work_on(admin, engine, PII, PII_TEXT)
    assert all(rows_of(engine, PII).values())
    found = admin.get("/admin/erase", params={"q": PHONE})
    assert found.status_code == 200
    ref = queries.conversation_ref(ref_key(base.SECRET), PII)
    assert f'name="conversation" value="{ref}"' in found.text and PII not in found.text
    token = csrf_of(found.text)
    unconfirmed = admin.post("/admin/erase", data={"csrf_token": token, "conversation": ref})
    assert unconfirmed.status_code == 400 and count_events(engine, PII) > 0
    with caplog.at_level(logging.INFO, logger="console"):
        done = admin.post("/admin/erase", data={"csrf_token": token, "conversation": ref, "confirm": "yes"})
    assert done.status_code == 200 and "Effacé : 6 événement(s)" in done.text
    assert set(rows_of(engine, PII).values()) == {0}
    assert count_events(engine, PUK) > 0  # nobody else
    assert PII not in listed(admin)
    assert "erasure by alice of conversation" in caplog.text
    for secret in (PII, PHONE, EMAIL, "perdu"):
        assert secret not in caplog.text
    assert admin.get(conversation_path(PII)).status_code == 404


def test_a_viewer_cannot_erase(client, engine):
    assert login(client, base.VIEWER).status_code == 303
    assert client.get("/admin/erase", params={"q": PHONE}).status_code == 403
    ref = queries.conversation_ref(ref_key(base.SECRET), PII)
    refused = post_form(client, "/conversations", "/admin/erase", conversation=ref, confirm="yes")
    assert refused.status_code == 403 and count_events(engine, PII) > 0


def test_erase_from_the_command_line_with_messenger_dedupe_ids(
    db_path, engine, tmp_path, monkeypatch, capsys
):
    app = console_app(db_path)  # tables and index as the running console leaves them
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as admin:
        assert login(admin, ADMIN).status_code == 303
        staff_work_on(admin, engine, PII, PII_TEXT)
        add_monthly_customer(engine)
        listed(admin)
    app.state.engine.dispose()
    dedupe = tmp_path / "messenger_mids.db"
    psid = MONTHLY.removeprefix("fb:")
    with sqlite3.connect(dedupe) as conn:
        conn.execute("CREATE TABLE seen_mid (mid TEXT PRIMARY KEY, seen_at REAL NOT NULL)")
        conn.executemany(
            "INSERT INTO seen_mid VALUES (?, ?)",
            [(f"postback:{psid}:1700000000:/facture", 1.0), ("mid:m_abc", 1.0), ("postback:999:1:/x", 1.0)],
        )
    monkeypatch.setenv("CONSOLE_DB_URL", f"sqlite:///{db_path}")
    monkeypatch.setenv("FB_DEDUPE_DB", str(dedupe))
    assert console_main(["erase", "--search", EMAIL, "--dry-run"]) == 0
    assert "1 conversation(s) concernée(s)." in capsys.readouterr().out
    assert count_events(engine, PII) > 0
    assert console_main(["erase", "--search", EMAIL, "--yes"]) == 0
    assert set(rows_of(engine, PII).values()) == {0}
    assert console_main(["erase", "--sender", MONTHLY, "--yes"]) == 0
    assert set(rows_of(engine, MONTHLY).values()) == {0}
    with sqlite3.connect(dedupe) as conn:
        left = {mid for (mid,) in conn.execute("SELECT mid FROM seen_mid")}
    assert left == {"mid:m_abc", "postback:999:1:/x"}
    assert count_events(engine, PUK) > 0


# --- personal data: masking, sender ids, export ---------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "rappelez moi au 78\u00a012\u00a034",  # no-break spaces
        "au 78\u202f12\u202f34 merci",  # narrow no-break spaces
        "au 78  12  34 merci",  # double spaces
        "(+687) 78 12 34",
        "+33 (0)6 12 34 56 78",
        "appelez-moi au0612345678",  # glued to a word
        "numéro:781234merci",
    ],
)
def test_phone_numbers_written_any_way_are_masked(text):
    masked = mask(text)
    assert PHONE_MASK in masked and not any(ch.isdigit() for ch in masked), masked


def test_sender_ids_are_never_shown_in_pages_or_urls(admin, engine):
    add_monthly_customer(engine)
    path = conversation_path(FOLLOW_UP)
    event_id = user_event_id(engine, FOLLOW_UP, base.RELABEL_TEXT)
    assert (
        post_form(admin, path, path, op="label", event_id=str(event_id), intent="resiliation").status_code
        == 303
    )
    senders = (PUK, PII, GIBBERISH, FOLLOW_UP, OLD, MONTHLY, MONTHLY.removeprefix("fb:"))
    for page_path in ("/conversations", "/labels", conversation_path(MONTHLY), conversation_path(GIBBERISH)):
        page = admin.get(page_path)
        assert page.status_code == 200, page_path
        for sender in senders:
            assert sender not in page.text and quote(sender, safe="") not in page.text, (page_path, sender)
    # the channel's namespace and a short reference instead
    assert (
        "fb:réf. " + queries.conversation_ref(ref_key(base.SECRET), MONTHLY)[:8]
        in admin.get(conversation_path(MONTHLY)).text
    )
    # an older link by sender id still leads to the conversation, by its reference
    old_link = admin.get("/conversations/" + quote(FOLLOW_UP, safe=""))
    assert old_link.status_code == 303 and old_link.headers["location"] == conversation_path(FOLLOW_UP)
    assert admin.get("/conversations/" + "0" * 32).status_code == 404


def test_the_export_warns_that_names_and_numbers_must_be_reviewed(admin):
    for page_path in ("/labels", "/admin"):
        assert "relisez chaque exemple avant de le committer" in admin.get(page_path).text
    export = admin.get("/labels/export.yml").text
    assert "# ATTENTION : relisez chaque exemple avant de le committer" in export


def test_the_retention_command_purges_by_event_age(db_path, engine, monkeypatch):
    add_monthly_customer(engine)
    monkeypatch.setenv("CONSOLE_DB_URL", f"sqlite:///{db_path}")
    monkeypatch.setenv("CHAT_CAGOU_RETENTION_DAYS", "abc")
    assert console_main(["retention", "--once"]) == 2
    monkeypatch.setenv("CHAT_CAGOU_RETENTION_DAYS", "90")
    assert console_main(["retention", "--once"]) == 0
    assert count_events(engine, OLD) == 0 and count_events(engine, MONTHLY) == 2
    assert count_events(engine, PUK) > 0


def test_the_production_topology_runs_the_retention_purge(db_path, engine, tmp_path):
    """deploy/prod.py starts `python -m console retention` when CHAT_CAGOU_RETENTION_DAYS is set."""
    from deploy.prod import Topology, stop_process

    assert Topology(tmp_path / "off", env={}).retention_command() is None
    add_monthly_customer(engine)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "CHAT_CAGOU_RETENTION_DAYS": "90",
        "CONSOLE_DB_URL": f"sqlite:///{db_path}",  # instead of the endpoints' PostgreSQL
    }
    topology = Topology(tmp_path / "on", env=env)
    assert topology.retention_command()[-3:] == ["-m", "console", "retention"]
    done = "retention purge (90 days): 7 events deleted from 2 conversations (1 entirely)"
    log_file = tmp_path / "on" / "retention.log"
    topology.start_retention()
    try:
        # the events go first, the log line once the purge has also refolded what it shortened
        deadline = time.monotonic() + 60
        while not (log_file.exists() and done in log_file.read_text()) and time.monotonic() < deadline:
            assert topology.retention.poll() is None, log_file.read_text()
            time.sleep(0.2)
        assert count_events(engine, OLD) == 0 and count_events(engine, MONTHLY) == 2
        assert topology.retention.poll() is None  # it stays, for the next day's run
    finally:
        stop_process(topology.retention)
    assert done in log_file.read_text()


GARBAGE = ["nan", "-inf", str(10**30), "9" * 5000, "\x00", "é" * 3000, "0x1F", "2024-02-30", "[]", "%"]
PARAMS = [
    "days",
    "page",
    "below",
    "date_from",
    "date_to",
    "q",
    "tag",
    "channel",
    "intent",
    "conversation",
    "next",
]


@pytest.mark.parametrize(
    "path", ["/conversations", "/insights", "/labels", "/admin", "/admin/purge", "/admin/erase", "/login"]
)
def test_no_query_parameter_makes_a_page_fail(admin, path):
    for name in PARAMS:
        for value in GARBAGE:
            page = admin.get(path, params={name: value})
            assert page.status_code < 500, (path, name, value[:20])


@pytest.mark.parametrize("tail", ["%00", "x" * 5000, "%C3%A9" * 300, "a/b/../c", "0" * 31 + "g", "%25"])
def test_no_conversation_path_makes_a_page_fail(admin, tail):
    assert admin.get("/conversations/" + tail).status_code == 404
    refused = post_form(admin, "/conversations", "/conversations/" + tail, op="tag", tag="x")
    assert refused.status_code == 404
