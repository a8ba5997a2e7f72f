"""The console's hardening (issue 13) in-process, in the style of tests/test_console_app.py
(its fixtures and synthetic conversations): bad input never gives a 500, the login
throttle and sessions, retention by event age, erasing one customer, sender ids masked."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa
from starlette.testclient import TestClient

from console import auth
from tests import test_console_app as base
from tests.test_console_app import (
    ADMIN,
    BASE_URL,
    DAY,
    FOLLOW_UP,
    PUK,
    console_app,
    conversation_path,
    csrf_of,
    login,
    post_form,
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
