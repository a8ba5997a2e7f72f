"""The trained model on the held-out French set: intent macro-F1 must stay >= 0.95."""

from __future__ import annotations

import pytest

from harness.nlu_holdout import load_holdout, score
from harness.project import ROOT

MIN_MACRO_F1 = 0.95


@pytest.fixture(scope="module")
def holdout_score(holdout_predictions):
    examples, predicted = holdout_predictions
    return examples, score(examples, predicted)


def test_holdout_is_not_in_training_data():
    from rasa.shared.nlu.training_data.loading import load_data

    training = {m.get("text").strip().lower() for m in load_data(str(ROOT / "data" / "nlu")).intent_examples}
    overlap = [e.text for e in load_holdout() if e.text.strip().lower() in training]
    assert overlap == []


def test_holdout_covers_every_intent_with_8_examples():
    import yaml

    from actions.understanding import PAYLOAD_INTENTS

    intents = set(yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))["intents"])
    intents -= PAYLOAD_INTENTS  # never typed
    counts = {}
    for example in load_holdout():
        counts[example.intent] = counts.get(example.intent, 0) + 1
    assert set(counts) == intents
    assert min(counts.values()) >= 8, counts


@pytest.mark.model
def test_holdout_macro_f1(holdout_score):
    _examples, result = holdout_score
    report = "\n".join(f"  {text!r}: expected {exp}, got {got}" for text, exp, got in result.errors)
    assert result.macro_f1 >= MIN_MACRO_F1, f"macro-F1 {result.macro_f1:.3f} < {MIN_MACRO_F1}\n{report}"
