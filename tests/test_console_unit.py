"""The console's parts that need no assistant: configuration, masking, export format,
passwords, and a production start (secret required, secure cookie)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
import yaml

from console import auth
from console.chart import stacked_bars
from console.config import ConfigError, Settings, tracker_store_url
from console.domain import domain_intents, plain_text, training_entity_texts, training_examples
from console.export import annotated_example, build_export
from console.masking import EMAIL_MASK, PHONE_MASK, fold, mask
from harness.console import console_env, running_console
from harness.project import ROOT


@pytest.mark.parametrize(
    "text",
    [
        "rappelez moi au 78 12 34",
        "mon num 781234",
        "+687 78.12.34 svp",
        "06 12 34 56 78",
        "0033 6 12 34 56 78",
        "tel: 78-12-34",
    ],
)
def test_phone_numbers_are_masked(text):
    masked = mask(text)
    assert PHONE_MASK in masked and not any(ch.isdigit() for ch in masked), masked


@pytest.mark.parametrize(
    "text",
    [
        "appelez le 1000 ou le 1016",
        "facture du 12/03/2024",
        "forfait 20 Go à 5000 F",
        "ligne coupée depuis 3 jours",
    ],
)
def test_service_numbers_dates_and_amounts_are_not_masked(text):
    assert mask(text) == text


def test_emails_are_masked_and_folding_ignores_accents_and_case():
    assert (
        mask("écrivez à jean.dupont@example.nc ou a-b+c@opt.nc.")
        == f"écrivez à {EMAIL_MASK} ou {EMAIL_MASK}."
    )
    assert fold("  Résilier   MON Abonnement ") == "resilier mon abonnement"


def test_annotated_example_keeps_known_entities_and_masks_the_rest():
    text = "je veux résilier par mail [vite], rappelez au 78 12 34"

    def at(word, entity):
        start = text.index(word)
        return {"entity": entity, "start": start, "end": start + len(word), "value": word}

    entities = [
        at("mail", "canal"),
        at("rappelez", "canal"),  # never annotated so in data/
        at("78", "service"),  # a piece of the phone number
        at("je", "inconnue"),  # not in the domain
    ]
    known = training_entity_texts(ROOT / "data")
    assert ("canal", "mail") in known
    example = annotated_example(text, entities, {"canal", "service"}, known)
    assert example == f"je veux résilier par [mail](canal) (vite), rappelez au {PHONE_MASK}"
    assert plain_text(example) == f"je veux résilier par mail (vite), rappelez au {PHONE_MASK}"
    # without the training data's texts, every domain entity that is no phone number is kept
    loose = annotated_example(text, entities, {"canal", "service"})
    assert "[rappelez](canal)" in loose and "(service)" not in loose


def test_export_format_dedup_and_latest_label_wins():
    intents = domain_intents(ROOT / "domain.yml")
    existing = training_examples(ROOT / "data")
    assert "et par mail ?" in existing
    labels = [
        {
            "example": "et par [mail](canal) ?",
            "intent": "preciser_canal",
            "created_at": 1,
        },  # in data/ already
        {"example": "mon tel a disparu hier soir", "intent": "support_technique", "created_at": 2},
        {
            "example": "mon tel a disparu hier soir",
            "intent": "perte_vol",
            "created_at": 3,
        },  # relabelled again
        {"example": "blabla", "intent": "intention_supprimee", "created_at": 4},
    ]
    text, written, skipped = build_export(labels, existing, intents)
    assert (written, skipped) == (1, 3)
    content = yaml.safe_load(text)
    assert content["version"] == "3.1"
    assert content["nlu"] == [{"intent": "perte_vol", "examples": "- mon tel a disparu hier soir\n"}]
    empty, written, _ = build_export([], existing, intents)
    assert written == 0 and yaml.safe_load(empty)["nlu"] == []


def test_tracker_store_url_follows_endpoints_yml(tmp_path, monkeypatch):
    endpoints = tmp_path / "endpoints.yml"
    endpoints.write_text('tracker_store:\n  type: SQL\n  dialect: "sqlite"\n  db: "tracker.db"\n')
    assert str(tracker_store_url(endpoints)) == f"sqlite:///{tmp_path / 'tracker.db'}"
    endpoints.write_text(
        'tracker_store:\n  type: SQL\n  dialect: "postgresql"\n  url: ${TRACKER_HOST}\n'
        "  port: ${TRACKER_PORT}\n  db: ${TRACKER_DB}\n  username: ${TRACKER_USER}\n"
        "  password: ${TRACKER_PASSWORD}\n"
    )
    for name, value in dict(
        TRACKER_HOST="db.interne",
        TRACKER_PORT="5433",
        TRACKER_DB="rasa",
        TRACKER_USER="rasa",
        TRACKER_PASSWORD="s3cr3t/:",
    ).items():
        monkeypatch.setenv(name, value)
    url = tracker_store_url(endpoints)
    assert (url.drivername, url.host, url.port, url.database, url.username, url.password) == (
        "postgresql",
        "db.interne",
        5433,
        "rasa",
        "rasa",
        "s3cr3t/:",
    )
    monkeypatch.delenv("TRACKER_PASSWORD")
    with pytest.raises(ConfigError, match="TRACKER_PASSWORD"):
        tracker_store_url(endpoints)
    endpoints.write_text("tracker_store:\n  type: redis\n")
    with pytest.raises(ConfigError, match="CONSOLE_DB_URL"):
        tracker_store_url(endpoints)


def test_settings_need_a_secret_key_in_production(monkeypatch, tmp_path):
    monkeypatch.setenv("CONSOLE_DB_URL", f"sqlite:///{tmp_path / 't.db'}")
    for name in ("CONSOLE_SECRET_KEY", "CONSOLE_DEV", "CONSOLE_COOKIE_SECURE"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="CONSOLE_SECRET_KEY"):
        Settings.from_env()
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "court")
    with pytest.raises(ConfigError, match="32"):
        Settings.from_env()
    monkeypatch.setenv("CONSOLE_SECRET_KEY", "x" * 40)
    assert Settings.from_env().cookie_secure is True
    monkeypatch.delenv("CONSOLE_SECRET_KEY")
    dev = Settings.from_env(dev=True)
    assert dev.dev and not dev.cookie_secure and len(dev.secret_key) >= 32


def test_serve_refuses_to_start_without_secret_key(tmp_path):
    env = console_env(f"sqlite:///{tmp_path / 't.db'}")
    done = subprocess.run(
        [sys.executable, "-m", "console", "serve", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "CONSOLE_SECRET_KEY" in done.stderr


@pytest.mark.servers
def test_production_start_on_a_database_rasa_has_not_written_yet(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'empty.db'}"
    with running_console(db_url, tmp_path / "console.log", CONSOLE_COOKIE_SECURE=None) as console:
        login = requests.get(console.url + "/login", timeout=10)
        cookie = login.headers["set-cookie"].lower()
        assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        assert (
            requests.get(console.url + "/conversations", allow_redirects=False, timeout=10).status_code == 303
        )


def test_passwords_are_salted_scrypt_hashes():
    first, second = auth.hash_password("correct horse 1"), auth.hash_password("correct horse 1")
    assert first != second and first.startswith("scrypt$")
    assert auth.verify_password("correct horse 1", first)
    assert not auth.verify_password("correct horse 2", first)
    assert not auth.verify_password("correct horse 1", first[:-4] + "AAAA")
    assert not auth.verify_password("x", "md5$abc")


def test_staff_accounts_are_validated(tmp_path):
    from console.db import create_tables, make_engine

    engine = make_engine(f"sqlite:///{tmp_path / 'users.db'}")
    create_tables(engine)
    with pytest.raises(ValueError):
        auth.upsert_user(engine, "bob", "viewer", "court")
    with pytest.raises(ValueError):
        auth.upsert_user(engine, "bob", "superuser", "assez-long-mot-de-passe")
    with pytest.raises(ValueError):
        auth.upsert_user(engine, "bob le bricoleur", "viewer", "assez-long-mot-de-passe")
    assert auth.upsert_user(engine, "bob", "viewer", "assez-long-mot-de-passe") is True
    assert auth.upsert_user(engine, "bob", "admin", "un-autre-mot-de-passe") is False
    assert auth.authenticate(engine, "bob", "assez-long-mot-de-passe") is None
    assert auth.authenticate(engine, "bob", "un-autre-mot-de-passe")["role"] == "admin"
    assert auth.authenticate(engine, "personne", "un-autre-mot-de-passe") is None


def test_login_throttle():
    # the details (delays, addresses, memory) are in tests/test_console_security.py
    throttle = auth.LoginThrottle(free=3)
    for _ in range(3):
        assert throttle.attempt("bob", "10.0.0.1") == 0
    assert throttle.attempt("bob", "10.0.0.1") > 0 and throttle.attempt("alice", "10.0.0.1") == 0
    throttle.succeeded("bob", "10.0.0.1")
    assert throttle.attempt("bob", "10.0.0.1") == 0


def test_chart_draws_one_bar_per_channel_and_day():
    svg = stacked_bars(
        [("2026-11-01", {"rest": 3, "socketio": 1}), ("2026-11-02", {}), ("2026-11-03", {"rest": 7})],
        ["rest", "socketio"],
    )
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert svg.count('fill="#2b6cb0"') == 2 and svg.count('fill="#2f855a"') == 1
    assert "2026-11-02 : 0" in svg
