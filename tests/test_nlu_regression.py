"""Regression guard of the NLU against a plain baseline (issue 6).

The trained model (models/chat-cagou.tar.gz) must not fall below a scikit-learn baseline
(harness/sklearn_baseline.py: TF-IDF word + char n-grams, logistic regression), trained here on
the same data/nlu in a few seconds, on the robustness subset of tests/nlu_holdout.yml (no
accents, typos, SMS spelling, long messages, tu/vous) and on the whole held-out set.
The floor of 0.95 held-out macro-F1 is test_nlu_holdout.py.

Two comparisons, because the two classifiers' confidences are not on the same scale:
- *as served*: both fall back to `nlu_fallback` (a miss) below the project's threshold (0.4);
- *top-1*: the best real intent of each, fallback ignored, so that the baseline is not
  handicapped by a threshold tuned for DIET.
bench/nlu_compare.py (`make bench-nlu`) gives the full comparison: bench/nlu_results.md."""

from __future__ import annotations

import pytest

from harness import sklearn_baseline
from harness.nlu_holdout import score
from harness.project import ROOT

pytestmark = pytest.mark.model


@pytest.fixture(scope="module")
def baseline(holdout_parses):
    examples, _ = holdout_parses
    texts, intents = sklearn_baseline.training_examples(ROOT / "data" / "nlu")
    model = sklearn_baseline.train(texts, intents)
    top = sklearn_baseline.predict_with_confidence(model, [e.text for e in examples])
    return {
        "served": sklearn_baseline.apply_fallback(top, sklearn_baseline.DEFAULT_THRESHOLD),
        "top": [intent for intent, _ in top],
    }


@pytest.fixture(scope="module")
def ours(holdout_parses):
    _, parses = holdout_parses
    return {"served": [served for served, _ in parses], "top": [top for _, top in parses]}


def errors(result) -> str:
    return "\n".join(f"  {text.strip()!r}: expected {exp}, got {got}" for text, exp, got in result.errors)


@pytest.mark.parametrize("subset", ["robustness subset", "held-out set"])
@pytest.mark.parametrize("mode", ["served", "top"])
def test_not_below_sklearn_baseline(holdout_parses, ours, baseline, subset, mode):
    examples, _ = holdout_parses
    keep = [i for i, e in enumerate(examples) if e.robustness or subset == "held-out set"]
    if subset == "robustness subset":
        assert len(keep) >= 100, "the robustness subset of tests/nlu_holdout.yml shrank"
    picked = [examples[i] for i in keep]
    mine = score(picked, [ours[mode][i] for i in keep])
    theirs = score(picked, [baseline[mode][i] for i in keep])
    assert mine.macro_f1 >= theirs.macro_f1, (
        f"{subset} ({len(keep)} utterances), macro-F1 {mode}: trained model {mine.macro_f1:.3f} < "
        f"scikit-learn baseline {theirs.macro_f1:.3f}\nerrors of the trained model:\n{errors(mine)}"
        f"\nerrors of the baseline:\n{errors(theirs)}"
    )


def test_baseline_is_a_real_competitor(holdout_parses, baseline):
    """The guard means something only if the baseline is good: a broken baseline would let any
    model pass."""
    examples, _ = holdout_parses
    assert score(examples, baseline["top"]).macro_f1 >= 0.9
