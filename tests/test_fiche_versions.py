"""Versions of the fiche in the database and the action server that serves the published one
(actions/fiche_versions.py, actions/live_fiche.py; issue 16). Real SQLite, the real loader and
the real actions; the PostgreSQL path is in tests/test_fiche_browser.py (production topology)."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from actions import fiche_versions, live_fiche
from actions.actions import ActionRepondre
from actions.fiche import DEFAULT_PATH, FicheError, load_fiche
from actions.fiche_versions import PublishError
from tests.conftest import make_tracker, run_action

CHANGE = "Horaires du 1000 prolongés ; changement d'offre plus par téléphone"


def changed_content(closes: str = "16:30") -> str:
    """The issue's change: the 1000 closes later, changing an offer is no longer by phone."""
    raw = yaml.safe_load(DEFAULT_PATH.read_text(encoding="utf-8"))
    raw["phone_services"]["1000"]["closes"] = closes
    cell = raw["procedures"]["changement_offre"]["cells"]["telephone"]
    cell["status"] = "unavailable"
    cell["answer"] = "le changement d'offre ne se fait plus par téléphone."
    return fiche_versions.dump(raw)


@pytest.fixture
def engine(tmp_path: Path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'console.db'}")
    fiche_versions.ensure_tables(engine)
    yield engine
    engine.dispose()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def live(engine):
    clock = Clock()
    served = live_fiche.LiveFiche(engine, "test-server", interval=3.0, clock=clock)
    served.clock_ = clock
    return served


def later(live: live_fiche.LiveFiche) -> None:
    live.clock_.now += live.interval  # type: ignore[attr-defined]


# --- the store ------------------------------------------------------------------------------


def test_version_1_is_the_file_and_is_seeded_once(engine):
    fiche_versions.ensure_tables(engine)  # a second process starting: nothing more
    with engine.connect() as conn:
        versions = fiche_versions.all_versions(conn)
        history = fiche_versions.history(conn)
    assert [v.number for v in versions] == [1]
    assert versions[0].content == DEFAULT_PATH.read_text(encoding="utf-8")
    assert [(h["version"], h["action"]) for h in history] == [(1, "seed")]


def test_publish_then_rollback_are_logged_with_author_and_reason(engine):
    number = fiche_versions.publish(engine, changed_content(), "marie.dupont", CHANGE)
    assert number == 2
    with engine.connect() as conn:
        assert fiche_versions.published_number(conn) == 2
        v2 = fiche_versions.get(conn, 2)
    assert (v2.author, v2.reason) == ("marie.dupont", CHANGE)
    fiche = fiche_versions.fiche_of_version(v2)
    assert fiche.phones["1000"].hours_text == "du lundi au vendredi de 7h30 à 16h30"
    assert fiche.version == 2 and "version 2" in fiche.source_text and "26/07/2021" in fiche.source_text

    fiche_versions.rollback(engine, 1, "paul.martin", "")
    with engine.connect() as conn:
        assert fiche_versions.published_number(conn) == 1
        history = fiche_versions.history(conn)
    assert [(h["version"], h["action"], h["author"]) for h in history] == [
        (1, "rollback", "paul.martin"),
        (2, "publish", "marie.dupont"),
        (1, "seed", fiche_versions.SEED_AUTHOR),
    ]
    assert history[0]["reason"] == "Retour à la version 1"


def test_an_invalid_or_empty_publication_stores_nothing(engine):
    with pytest.raises(FicheError, match=r"phone_services\.1000\.closes"):
        fiche_versions.publish(engine, changed_content(closes="7h"), "marie", CHANGE)
    with pytest.raises(PublishError, match="raison"):
        fiche_versions.publish(engine, changed_content(), "marie", "   ")
    with pytest.raises(PublishError, match="Aucun changement"):
        fiche_versions.publish(engine, DEFAULT_PATH.read_text(encoding="utf-8"), "marie", CHANGE)
    with pytest.raises(PublishError, match="n'existe pas"):
        fiche_versions.rollback(engine, 7, "marie", "")
    with pytest.raises(PublishError, match="déjà la version publiée"):
        fiche_versions.rollback(engine, 1, "marie", "")
    with engine.connect() as conn:
        assert [v.number for v in fiche_versions.all_versions(conn)] == [1]
        assert len(fiche_versions.history(conn)) == 1


def test_a_struck_cell_must_say_not_through_this_channel(engine):
    raw = yaml.safe_load(changed_content())
    raw["procedures"]["changement_offre"]["cells"]["telephone"]["answer"] = (
        "via le Service Clientèle au {tel_1000}."
    )
    with pytest.raises(FicheError, match=r"changement_offre\.cells\.telephone\.answer"):
        fiche_versions.publish(engine, fiche_versions.dump(raw), "marie", CHANGE)


def test_versions_survive_a_restart(tmp_path, engine):
    fiche_versions.publish(engine, changed_content(), "marie", CHANGE)
    engine.dispose()
    again = sa.create_engine(f"sqlite:///{tmp_path / 'console.db'}")
    fiche_versions.ensure_tables(again)  # what a restarted console does
    with again.connect() as conn:
        assert fiche_versions.published_number(conn) == 2
        assert fiche_versions.published(conn).reason == CHANGE
    again.dispose()


# --- the action server: the published version, live ---------------------------------------


def test_the_action_server_follows_publications_and_rollbacks(engine, live):
    assert live.current().version == 1 and live.serving == 1
    fiche_versions.publish(engine, changed_content(), "marie", CHANGE)
    assert live.current().version == 1, "not before the next check"
    later(live)
    assert live.current().phones["1000"].closes.strftime("%H:%M") == "16:30"
    assert live.serving == 2
    fiche_versions.rollback(engine, 1, "marie", "")
    later(live)
    assert live.current().phones["1000"].closes.strftime("%H:%M") == "15:45"
    with engine.connect() as conn:
        [server] = fiche_versions.servers_seen(conn, 0)
    assert (server["name"], server["serving"], server["published"], server["error"]) == (
        "test-server",
        1,
        1,
        "",
    )


def test_a_version_it_cannot_load_is_not_served_and_is_reported(engine, live, caplog):
    live.current()
    broken = yaml.safe_load(changed_content())
    del broken["emails"]  # written by hand, past the console's validation
    with engine.begin() as conn:
        conn.execute(
            fiche_versions.versions.insert().values(
                number=2, content=yaml.safe_dump(broken), author="x", created_at=0, reason="x"
            )
        )
        conn.execute(
            fiche_versions.log.insert().values(version=2, action="publish", author="x", at=0, reason="x")
        )
    later(live)
    with caplog.at_level(logging.ERROR, logger="actions.live_fiche"):
        fiche = live.current()
    assert fiche.version == 1 and fiche.phones["1000"].closes.strftime("%H:%M") == "15:45"
    assert "version 2 not served" in caplog.text and "emails" in caplog.text
    with engine.connect() as conn:
        [server] = fiche_versions.servers_seen(conn, 0)
    assert server["serving"] == 1 and server["published"] == 2
    assert "version 2 refusée" in server["error"] and "emails" in server["error"]


def test_without_the_database_it_keeps_serving_what_it_has(tmp_path, caplog):
    served = live_fiche.LiveFiche(
        sa.create_engine(f"sqlite:///{tmp_path}/absent/dir/x.db"), "s", clock=Clock()
    )
    with caplog.at_level(logging.WARNING, logger="actions.live_fiche"):
        assert served.current() == load_fiche()
    assert "database unreachable" in caplog.text


def test_settings_are_checked(monkeypatch):
    monkeypatch.setenv("FICHE_CHECK_SECONDS", "vite")
    with pytest.raises(ValueError, match="FICHE_CHECK_SECONDS"):
        live_fiche.from_environment()
    monkeypatch.setenv("FICHE_CHECK_SECONDS", "0")
    with pytest.raises(ValueError, match="positive"):
        live_fiche.from_environment()


def answer(intent: str, channel: str) -> dict:
    dispatcher, _ = run_action(
        ActionRepondre(), make_tracker(intent, [{"entity": "canal", "value": channel}])
    )
    return dispatcher.messages[0]


def test_answers_come_from_the_published_version_and_say_which(engine, live, monkeypatch):
    """ActionRepondre, as the action server runs it, before and after a publication."""
    monkeypatch.setattr(live_fiche, "_live", live)
    message = answer("changement_offre", "telephone")
    assert message["text"].lower().startswith("oui, par téléphone")
    assert message["text"].rstrip().endswith("Source : fiche Mobilis Pro du 26/07/2021.")

    fiche_versions.publish(engine, changed_content(), "marie", CHANGE)
    later(live)
    message = answer("changement_offre", "telephone")
    first = message["text"].splitlines()[0].lower()
    assert first.startswith("non, pas par téléphone"), first
    assert "ne se fait plus par téléphone" in message["text"]
    assert "version 2)" in message["text"].splitlines()[-1]
    message = answer("perte_vol", "telephone")
    assert "de 7h30 à 16h30" in message["text"]


def test_the_fiche_of_a_version_is_independent_of_the_next(engine):
    """Loading a version never changes another one's answers (the loader fills placeholders)."""
    one = fiche_versions.fiche_of(DEFAULT_PATH.read_text(encoding="utf-8"))
    before = copy.deepcopy(one.procedures["perte_vol"].cells["telephone"].answer)
    fiche_versions.fiche_of(changed_content(), 2)
    assert one.procedures["perte_vol"].cells["telephone"].answer == before


# --- the fact tests on a version (scripts/check_fiche.py) ----------------------------------


def test_the_fact_tests_check_a_version_against_itself_not_the_seed(tmp_path, engine, capfd):
    """The same fact tests pass on the changed version in version mode, and fail on it when
    its facts are compared with the seed: 16h30 is not in the document of 26/07/2021."""
    from scripts.check_fiche import FACT_TESTS, run

    number = fiche_versions.publish(engine, changed_content(), "marie", CHANGE)
    path = tmp_path / "v2.yml"
    with engine.connect() as conn:
        path.write_text(fiche_versions.get(conn, number).content, encoding="utf-8")
    assert run(path) == 0, capfd.readouterr().out[-3000:]
    assert "passed" in capfd.readouterr().out

    one = "tests/test_actions.py::test_procedure_with_channel[perte_vol-telephone]"
    assert one.split("[")[0] in FACT_TESTS
    seed_mode = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", one],
        env={**os.environ, "CHAT_CAGOU_FICHE": str(path)},
        capture_output=True,
        text=True,
    )
    assert seed_mode.returncode != 0
    assert "'16h30' is not in the fiche" in seed_mode.stdout


def test_a_restarted_action_server_serves_the_published_version_from_its_first_answer(
    tmp_path, engine, monkeypatch
):
    fiche_versions.publish(engine, changed_content(), "marie", CHANGE)
    monkeypatch.setattr(live_fiche, "_live", None)  # a new process
    monkeypatch.setenv("FICHE_DB_URL", f"sqlite:///{tmp_path / 'console.db'}")
    monkeypatch.setenv("FICHE_CHECK_SECONDS", "3600")  # the background thread stays quiet here
    monkeypatch.setenv("ACTION_SERVER_NAME", "restarted")
    assert live_fiche.current().version == 2
    assert live_fiche.live().thread is not None


def test_the_service_unavailable_reply_gives_the_published_contacts(engine, live, monkeypatch):
    """What a channel sends when Rasa cannot answer (channels/guard.py) follows the fiche too."""
    from channels.guard import unavailable_text

    monkeypatch.setattr(live_fiche, "_live", live)
    assert "de 7h30 à 15h45" in unavailable_text()
    fiche_versions.publish(engine, changed_content(), "marie", CHANGE)
    later(live)
    assert "de 7h30 à 16h30" in unavailable_text()
