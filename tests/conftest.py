"""Shared fixtures: the fiche, the seed document it was written from, Rasa SDK trackers."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import pytest
from rasa_sdk import Tracker

from actions.fiche import load_fiche

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "chat-cagou.tar.gz"


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
) -> Tracker:
    latest = {
        "text": text,
        "intent": {"name": intent, "confidence": 0.9},
        "entities": entities or [],
        "intent_ranking": ranking or [],
    }
    return Tracker(
        sender_id="test",
        slots=slots or {},
        latest_message=latest,
        events=events or [{"event": "user", "text": text, "parse_data": latest}],
        paused=False,
        followup_action=None,
        active_loop={},
        latest_action_name="action_listen",
    )


@pytest.fixture(scope="session")
def servers(tmp_path_factory):
    """The real action server and Rasa (REST channel), started once for the session."""
    from tests.servers import running_servers

    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` (make test does it)")
    with running_servers(tmp_path_factory.mktemp("servers")) as running:
        yield running


# --- The trained model on the held-out NLU set, loaded and run once per session -------------
# (tests/test_nlu_regression.py; tests/test_nlu_holdout.py can use them too.)


@pytest.fixture(scope="session")
def nlu_agent():
    """The trained model (models/chat-cagou.tar.gz), loaded once for the whole session."""
    from bench.holdout import load_agent

    if not MODEL.exists():
        pytest.fail("no trained model: run `make train` (make test does it)")
    return load_agent(MODEL)


@pytest.fixture(scope="session")
def holdout_parses(nlu_agent):
    """(held-out examples, [(intent as served, best real intent)]) from the trained model."""
    from bench.holdout import load_holdout, predict_served_and_top

    examples = load_holdout()
    return examples, predict_served_and_top(nlu_agent, [e.text for e in examples])


@pytest.fixture(scope="session")
def holdout_predictions(holdout_parses):
    """(held-out examples, intents predicted by the trained model as served: nlu_fallback included)."""
    examples, parses = holdout_parses
    return examples, [served for served, _ in parses]
