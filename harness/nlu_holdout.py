"""The held-out French NLU set (tests/nlu_holdout.yml): loading it, running the trained model on
it, scoring the predictions. Used by tests/ (NLU guards) and bench/ (figures)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.project import MODEL, ROOT

HOLDOUT = ROOT / "tests" / "nlu_holdout.yml"
FALLBACK = "nlu_fallback"


@dataclass
class HoldoutExample:
    text: str
    intent: str
    robustness: str | None


@dataclass
class Score:
    accuracy: float
    macro_f1: float
    per_intent_f1: dict[str, float]
    errors: list[tuple[str, str, str]]  # (text, expected, predicted)
    count: int


def load_holdout(path: Path = HOLDOUT) -> list[HoldoutExample]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    examples = []
    for message in data.intent_examples:
        metadata = message.get("metadata") or {}
        example_meta = metadata.get("example") or {}
        examples.append(
            HoldoutExample(message.get("text"), message.get("intent"), example_meta.get("robustness"))
        )
    return examples


def load_agent(model: Path = MODEL) -> Any:
    """The trained model as a Rasa Agent (quiet: no debug line per parsed message)."""
    import logging

    from rasa.core.agent import Agent
    from rasa.utils.log_utils import configure_structlog

    configure_structlog(logging.WARNING)
    return Agent.load(str(model))


def predict(agent: Any, texts: Sequence[str]) -> list[str]:
    """The intent as served: `nlu_fallback` when the FallbackClassifier fired."""
    return [served for served, _ in predict_served_and_top(agent, texts)]


def best_real_intent(parsed: dict[str, Any]) -> dict[str, Any]:
    """The best intent of a parse other than `nlu_fallback` (name and confidence): what the
    classifier chose, whatever the fallback threshold."""
    best: dict[str, Any] = next(
        (i for i in parsed.get("intent_ranking", []) if i["name"] != FALLBACK), parsed["intent"]
    )
    return best


def predict_served_and_top(agent: Any, texts: Sequence[str]) -> list[tuple[str, str]]:
    """(intent as served, best real intent): the second ignores the fallback threshold, to
    compare with classifiers whose confidences are scaled differently."""

    async def run() -> list[tuple[str, str]]:
        out = []
        for text in texts:
            parsed = await agent.parse_message(text)
            out.append((parsed["intent"]["name"], best_real_intent(parsed)["name"]))
        return out

    return asyncio.run(run())


def score(examples: Sequence[HoldoutExample], predicted: Sequence[str]) -> Score:
    from sklearn.metrics import accuracy_score, f1_score

    expected = [e.intent for e in examples]
    labels = sorted(set(expected))
    per_intent = f1_score(expected, predicted, labels=labels, average=None, zero_division=0)
    errors = [(e.text, e.intent, p) for e, p in zip(examples, predicted, strict=False) if e.intent != p]
    return Score(
        accuracy=float(accuracy_score(expected, predicted)),
        macro_f1=float(f1_score(expected, predicted, labels=labels, average="macro", zero_division=0)),
        per_intent_f1=dict(zip(labels, map(float, per_intent), strict=False)),
        errors=errors,
        count=len(examples),
    )
