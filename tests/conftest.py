"""Shared fixtures: the fiche, the seed document it was written from, Rasa SDK trackers, and the
servers of harness/ (started once per session): `servers` (action server + Rasa) and `prod`
(the production topology).

Markers (pyproject.toml): a test that uses `servers` must be marked `servers` and `model`; one
that uses `prod`, `servers`, `model`, `postgres` and `redis`. Collection fails otherwise, so that
`pytest -m "not (model or servers or postgres or redis or browser)"` never starts them."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker

from actions.fiche import load_fiche
from harness.browser import CHROMIUM, chromium_installed
from harness.project import MODEL, NO_MODEL, ROOT

# fixture -> the markers a test using it must carry
FIXTURE_MARKERS = {
    "servers": {"servers", "model"},
    "prod": {"servers", "model", "postgres", "redis"},
    "nlu_agent": {"model"},
    "live_desk": {"servers", "model"},
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = []
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        marks = {mark.name for mark in item.iter_markers()}
        for fixture, needed in FIXTURE_MARKERS.items():
            if fixture in fixtures and not needed <= marks:
                missing.append(f"{item.nodeid}: uses `{fixture}`, not marked {sorted(needed - marks)}")
    if missing:
        raise pytest.UsageError("tests without their markers:\n" + "\n".join(missing))


def require_model() -> None:
    if not MODEL.exists():
        pytest.fail(NO_MODEL)


# Browser modules skip without the machine's Chromium, before any server starts; in CI (which
# installs it) they run and `require_chromium` fails instead.
skip_without_chromium = pytest.mark.skipif(
    not chromium_installed() and not os.environ.get("CI"),
    reason=f"{CHROMIUM} is missing (apt-get install chromium)",
)


def require_chromium() -> None:
    if not chromium_installed():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does it)")


def seed_path() -> Path | None:
    """The original fiche (../shared/seed/), beside the repository on these machines and in CI."""
    name = load_fiche().seed_file
    candidates = [os.environ.get("CHAT_CAGOU_SEED", ""), ROOT.parent / "shared" / "seed" / name]
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


@pytest.fixture(scope="session")
def fiche():
    return load_fiche()


def version_mode() -> bool:
    """The fact tests run on a published version of the fiche (scripts/check_fiche.py): the
    actions load CHAT_CAGOU_FICHE and the facts they say are checked against it, not the seed."""
    return os.environ.get("CHAT_CAGOU_CHECK_VERSION") == "1"


def version_reference() -> str:
    """The version under test as a text to find facts in: its file, and its hours as the
    answers write them ("07:30" is said "7h30")."""
    from actions.fiche import hour_text

    path = Path(os.environ["CHAT_CAGOU_FICHE"])
    fiche = load_fiche(path)
    hours = [hour_text(t) for s in fiche.phones.values() if not s.always_open for t in s.span]
    return path.read_text(encoding="utf-8") + "\n" + " ".join(hours)


@pytest.fixture(scope="session")
def seed_text(request: pytest.FixtureRequest) -> str:
    """What the facts of the answers are checked against: the document of 26/07/2021, or in
    version mode the version under test."""
    if version_mode():
        return version_reference()
    return request.getfixturevalue("document_text")


@pytest.fixture(scope="session")
def document_text() -> str:
    """The original document (../shared/seed/)."""
    path = seed_path()
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("the seed fiche (../shared/seed/) is missing: CI must check the data against it")
        pytest.skip("seed fiche not found beside the repository (set CHAT_CAGOU_SEED)")
    return path.read_text(encoding="utf-8")


def normalise(text: str) -> str:
    """Spaces collapsed, the seed's 'agence-entreprises @opt.nc' typo mended."""
    return re.sub(r"\s+", " ", text.replace(" @opt.nc", "@opt.nc"))


def make_tracker(
    intent: str,
    entities: list[dict[str, Any]] | None = None,
    slots: dict[str, Any] | None = None,
    events: list[dict[str, Any]] | None = None,
    ranking: list[dict[str, Any]] | None = None,
    text: str = "",
    channel: str | None = None,
    metadata: dict[str, Any] | None = None,
) -> Tracker:
    """A tracker whose last message has this intent; `channel` is its input channel."""
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "entities": entities or [],
        "intent_ranking": ranking or [],
        "metadata": metadata or {},
    }
    user = {"event": "user", "text": text, "parse_data": latest, "input_channel": channel}
    return Tracker(
        sender_id="test",
        slots=slots or {},
        latest_message=latest,
        events=[*(events or []), user] if channel or not events else events,
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


def run_action(action: Any, tracker: Tracker) -> tuple[Any, list[dict[str, Any]]]:
    """(dispatcher, events) of one run of a custom action, sync or async, as the SDK runs it.

    Each message's "text" is what the customer reads (the Markdown rendered as plain lines,
    actions/markdown.py `plain`); the Markdown as sent is kept under "markdown"."""
    import asyncio
    import inspect

    from rasa_sdk.executor import CollectingDispatcher

    from actions.markdown import plain

    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, {})
    if inspect.isawaitable(events):
        events = asyncio.run(events)
    for message in dispatcher.messages:
        if message.get("text"):
            message["markdown"] = message["text"]
            message["text"] = plain(message["text"])
    return dispatcher, events


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium in French, once per test module (the browser tests)."""
    from harness.browser import launched_chromium

    require_chromium()
    with launched_chromium(["--lang=fr-FR"]) as chromium:
        yield chromium


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real action server and Rasa (REST channel), started once for the session, on the
    real clock unless a test sets one (`servers.clock`, harness/clock.py)."""
    from harness.clock import TestClock
    from harness.servers import running_servers

    require_model()
    workdir = tmp_path_factory.mktemp("servers")
    clock = TestClock(workdir / "clock")
    with running_servers(workdir, extra_env=clock.env) as running:
        running.clock = clock
        yield running
        clock.clear()


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The production topology (deploy/prod.py: two action servers, two Rasa instances, nginx,
    PostgreSQL tracker store, Redis lock store, Messenger on a Graph API stub), once for the
    session, in a database and under a Redis key prefix of its own (Redis database
    CHAT_CAGOU_TEST_REDIS_DB, default 9)."""
    from harness.clock import TestClock
    from harness.ports import free_port
    from harness.topology import nginx_installed, running_prod

    require_model()
    if not nginx_installed():
        pytest.fail("nginx is not installed (.ci/run installs it: apt-get install -y nginx)")
    redis_db = int(os.environ.get("CHAT_CAGOU_TEST_REDIS_DB", "9"))
    run_dir = tmp_path_factory.mktemp("prod")
    # The real clock unless a test sets one; the console of the live desk, on a port reserved
    # now, is started by the test that needs it (tests/test_handoff_prod.py).
    clock = TestClock(run_dir / "clock")
    console_port = free_port()
    # Two action servers: a published version of the fiche must reach each of them (issue 16).
    extra = {**clock.env, "CHAT_CAGOU_CONSOLE_URL": f"http://127.0.0.1:{console_port}", "ACTION_SERVERS": "2"}
    with running_prod(run_dir, redis_db=redis_db, messenger=True, extra_env=extra) as running:
        running.clock, running.console_port = clock, console_port
        yield running
        clock.clear()


# --- The live desk: the servers with Rasa's HTTP API, the console, the chat page, a clock ----


@pytest.fixture(scope="session")
def live_desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """For the handoff and callback tests (tests/test_handoff_browser.py,
    tests/test_callback_e2e.py): the action server on a test clock (harness/clock.py), Rasa
    with its HTTP API behind a token, the console (its live desk writing through that API,
    the action server asking it who is present), the chat page, a staff account. Once for
    the session: starting them costs a minute."""
    import secrets
    from types import SimpleNamespace

    from harness.clock import TestClock
    from harness.console import Console, staff_user
    from harness.ports import free_port
    from harness.servers import running_servers
    from harness.web_page import running_web_page

    require_model()
    workdir = tmp_path_factory.mktemp("live-desk")
    clock = TestClock(workdir / "clock")
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    token = secrets.token_urlsafe(24)
    db_url = f"sqlite:///{workdir / 'tracker.db'}"
    console = Console(db_url, workdir / "console.log", RASA_AUTH_TOKEN=token)
    staff = ("marie.dupont", secrets.token_urlsafe(12))
    with running_servers(
        workdir,
        extra_env={"CHAT_CAGOU_WEB_ORIGINS": origin, "CHAT_CAGOU_CONSOLE_URL": console.url, **clock.env},
        extra_args=["--enable-api", "--auth-token", token],
    ) as servers:
        assert staff_user(db_url, staff[0], "viewer", staff[1]).returncode == 0
        console.env["CONSOLE_RASA_URL"] = servers.rasa_url
        console.start()
        try:
            with running_web_page(port, servers.rasa_url) as url:
                yield SimpleNamespace(
                    chat_url=url,
                    origin=origin,
                    console_url=console.url,
                    servers=servers,
                    clock=clock,
                    staff=staff,
                )
        finally:
            console.stop()


# --- The trained model on the held-out NLU set, loaded and run once per session -------------
# (tests/test_nlu_regression.py; tests/test_nlu_holdout.py can use them too.)


@pytest.fixture(scope="session")
def nlu_agent():
    """The trained model (models/chat-cagou.tar.gz), loaded once for the whole session."""
    from harness.nlu_holdout import load_agent

    require_model()
    return load_agent(MODEL)


@pytest.fixture(scope="session")
def holdout_parses(nlu_agent):
    """(held-out examples, [(intent as served, best real intent)]) from the trained model."""
    from harness.nlu_holdout import load_holdout, predict_served_and_top

    examples = load_holdout()
    return examples, predict_served_and_top(nlu_agent, [e.text for e in examples])


@pytest.fixture(scope="session")
def holdout_predictions(holdout_parses):
    """(held-out examples, intents predicted by the trained model as served: nlu_fallback included)."""
    examples, parses = holdout_parses
    return examples, [served for served, _ in parses]


# --- Rasa's own session and tracker store code without a model (test_sessions, test_tracker_cache)


@pytest.fixture(scope="module")
def domain() -> Any:
    from rasa.shared.core.domain import Domain

    return Domain.load(str(ROOT / "domain.yml"))


@pytest.fixture
def bounded(monkeypatch):
    """Install session bounds for one test (channels/sessions.py); Rasa's own session code is
    restored afterwards."""
    from rasa.core.actions.action import ActionSessionStart
    from rasa.core.processor import MessageProcessor

    from channels import sessions

    monkeypatch.setattr(MessageProcessor, "_has_session_expired", MessageProcessor._has_session_expired)
    monkeypatch.setattr(
        ActionSessionStart,
        "_slot_set_events_from_tracker",
        ActionSessionStart.__dict__["_slot_set_events_from_tracker"],
    )
    return sessions.install


def bare_processor(domain: Any, store: Any) -> Any:
    """The parts of Rasa's MessageProcessor that fetch a tracker and start sessions."""
    from types import SimpleNamespace

    from rasa.core.processor import MessageProcessor

    proc = MessageProcessor.__new__(MessageProcessor)
    proc.domain = domain
    proc.tracker_store = store
    proc.action_endpoint = None
    proc.nlg = None
    proc.model_metadata = SimpleNamespace(model_id="test", assistant_id="test")
    return proc


def answer_events(n: int) -> list[Any]:
    """The events a real turn adds after the customer's message n: action_repondre, its two
    slots, the answer, action_listen."""
    from rasa.shared.core.events import ActionExecuted, BotUttered, SlotSet

    return [
        ActionExecuted("action_repondre"),
        SlotSet("sujet", f"sujet {n}"),
        SlotSet("procedure", "code_puk"),
        BotUttered(f"réponse {n}"),
        ActionExecuted("action_listen"),
    ]
