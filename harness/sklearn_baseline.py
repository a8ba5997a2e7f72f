"""The plain scikit-learn baseline the Rasa pipelines are compared with (bench/nlu_compare.py,
tests/test_nlu_regression.py): TF-IDF on words (1-2 grams) and on characters (char_wb 2-5),
then a logistic regression. No spaCy, no TensorFlow; trains in a few seconds.

Its settings were fixed before looking at any score (common defaults for short texts) and are
not tuned on the held-out set: a baseline tuned on the test set would mean nothing.

Fallback: like Rasa's FallbackClassifier, a message whose highest probability is below the
threshold is answered `nlu_fallback` (see `predict`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

FALLBACK_INTENT = "nlu_fallback"
# The threshold of the project's FallbackClassifier (config.yml).
DEFAULT_THRESHOLD = 0.4


def build_pipeline(random_state: int = 42) -> Pipeline:
    return Pipeline(
        [
            (
                "features",
                FeatureUnion(
                    [
                        (
                            "words",
                            TfidfVectorizer(
                                analyzer="word",
                                ngram_range=(1, 2),
                                lowercase=True,
                                sublinear_tf=True,
                                token_pattern=r"(?u)\b\w+\b",
                            ),
                        ),
                        (
                            "chars",
                            TfidfVectorizer(
                                analyzer="char_wb", ngram_range=(2, 5), lowercase=True, sublinear_tf=True
                            ),
                        ),
                    ]
                ),
            ),
            ("classifier", LogisticRegression(C=10.0, max_iter=5000, random_state=random_state)),
        ]
    )


def train(texts: Sequence[str], intents: Sequence[str], random_state: int = 42) -> Pipeline:
    model = build_pipeline(random_state)
    model.fit(list(texts), list(intents))
    return model


def predict_with_confidence(model: Pipeline, texts: Sequence[str]) -> list[tuple[str, float]]:
    """(top intent, its probability) for each text: the intent before any fallback."""
    probabilities = model.predict_proba(list(texts))
    classes = model.classes_
    return [(str(classes[row.argmax()]), float(row.max())) for row in probabilities]


def apply_fallback(top: Sequence[tuple[str, float]], threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    return [intent if confidence >= threshold else FALLBACK_INTENT for intent, confidence in top]


def predict(model: Pipeline, texts: Sequence[str], threshold: float = DEFAULT_THRESHOLD) -> list[str]:
    """The intent as served: `nlu_fallback` when the top probability is below the threshold."""
    return apply_fallback(predict_with_confidence(model, texts), threshold)


def training_examples(nlu_path: Path | str) -> tuple[list[str], list[str]]:
    """Texts and intents of the Rasa training data (entity annotations removed by Rasa's loader)."""
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(nlu_path))
    return [m.get("text") for m in data.intent_examples], [m.get("intent") for m in data.intent_examples]
