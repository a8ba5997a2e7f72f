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


@pytest.fixture(scope="session")
def seed_text() -> str:
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
    """(dispatcher, events) of one run of a custom action, sync or async, as the SDK runs it."""
    import asyncio
    import inspect

    from rasa_sdk.executor import CollectingDispatcher

    dispatcher = CollectingDispatcher()
    events = action.run(dispatcher, tracker, {})
    if inspect.isawaitable(events):
        events = asyncio.run(events)
    return dispatcher, events


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real action server and Rasa (REST channel), started once for the session."""
    from harness.servers import running_servers

    require_model()
    with running_servers(tmp_path_factory.mktemp("servers")) as running:
        yield running


@pytest.fixture(scope="session")
def prod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The production topology (deploy/prod.py: action server, two Rasa instances, nginx,
    PostgreSQL tracker store, Redis lock store, Messenger on a Graph API stub), once for the
    session, in a database and under a Redis key prefix of its own (Redis database
    CHAT_CAGOU_TEST_REDIS_DB, default 9)."""
    from harness.topology import nginx_installed, running_prod

    require_model()
    if not nginx_installed():
        pytest.fail("nginx is not installed (.ci/run installs it: apt-get install -y nginx)")
    redis_db = int(os.environ.get("CHAT_CAGOU_TEST_REDIS_DB", "9"))
    with running_prod(tmp_path_factory.mktemp("prod"), redis_db=redis_db, messenger=True) as running:
        yield running


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
