"""ClauseClassifier: the intent of each clause of a message, and the nouns we never trained on.

DIET gives one intent for the whole message. Customers often ask two or three things at
once ("mon PUK et aussi à quelle heure ferme le 1016 ?") or wrap one question in a long
story. This component splits the text into clauses (sentences and connectors such as
"et aussi", "puis", "ainsi que") and classifies each clause with a small TF-IDF + logistic
regression model trained here on the same NLU data (a few seconds; bench/nlu_results.md:
0.98 top-1 on the held-out set). It adds to the parse data:

- `clauses`: [{text, start, end, intent, confidence}] when the message has two clauses or
  more (empty otherwise); the action answers each confident topic, in order;
- `second_opinion`: {name, confidence} of the same small model on the whole message;
- `unknown_nouns`: nouns (spaCy POS) of the message that appear in no in-scope training
  example and not in the fiche: "passeport", "crèche", "alarme", "scooter"... The action uses
  them to ask whether a procedure question really concerns a Mobilis line.

It does not change DIET's intent: FallbackClassifier and the policies see the same result.
"""

from __future__ import annotations

import pickle
import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from components.situation import fold

CLAUSES_KEY = "clauses"
UNKNOWN_NOUNS_KEY = "unknown_nouns"
SECOND_OPINION_KEY = "second_opinion"
OUT_OF_SCOPE = "out_of_scope"
SPACY_DOC = "text_spacy_doc"
FICHE_FILE = Path(__file__).resolve().parent.parent / "fiche" / "mobilis_pro.yml"

# Clause boundaries: end of sentence, "+", a connector that starts another question, or a
# comma or "et" followed by a question word, a determiner or a topic noun ("l'adresse de
# l'agence, le numéro du 1000 et les horaires").
_NEXT_QUESTION = (
    r"(?:quel|quelle|quels|quelles|comment|où|ou est|à quelle|a quelle|combien|est-ce|est ce|y a|c'est|c est"
    r"|qui|que|qu'|quand|pourquoi|mon|ma|mes|votre|vos|je|j'|j |vous|pour|le|la|les|l'|un|une|leur|leurs"
    r"|ton|ta|tes|celui|celle|ceux|numéro|numero|adresse|mail|email|e-mail|horaires?|heures?|code|lien"
    r"|forum|tarifs?|site|chat)\b"
)
_BOUNDARY = re.compile(
    r"[?!;\n+]+|\.+(?=\s|$)"
    r"|\s(?:et aussi|et puis|puis|ainsi que|et également|et egalement|et en plus|en plus de ça"
    r"|autre question|par ailleurs|et sinon|sinon|et enfin|enfin|et également)\s"
    r"|(?:,\s*(?:et\s+|mais\s+)?|\s(?:et|mais)\s)(?=" + _NEXT_QUESTION + ")"
    # "et" before a verb in the infinitive starts another request: "réclamer par téléphone et
    # résilier en agence"
    r"|\s(?:et|puis)\s(?=[a-zéèêàâîôûç]{3,}(?:er|ir|re)\b)",
    re.IGNORECASE,
)
MIN_CLAUSE_LETTERS = 3
# Words of time, which say when, not what: never "unknown".
TIME_WORDS = [
    "lundi",
    "mardi",
    "mercredi",
    "jeudi",
    "vendredi",
    "samedi",
    "dimanche",
    "janvier",
    "fevrier",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "aout",
    "septembre",
    "octobre",
    "novembre",
    "decembre",
    "matin",
    "midi",
    "soir",
    "soiree",
    "nuit",
    "week",
    "end",
    "weekend",
    "semaine",
    "jour",
    "journee",
    "heure",
    "minute",
    "demain",
    "hier",
    "aujourd",
    "hui",
    "ferie",
    "feries",
    "fete",
    "fetes",
    "noel",
    "toussaint",
    "paques",
    "moment",
    "instant",
    "mat",
    "aprem",
]


def split_clauses(text: str) -> list[tuple[int, int]]:
    """(start, end) of each clause of `text` with some letters in it."""
    spans, start = [], 0
    for match in _BOUNDARY.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    result = []
    for begin, end in spans:
        while begin < end and not text[begin].isalnum():
            begin += 1
        while end > begin and not text[end - 1].isalnum():
            end -= 1
        if sum(c.isalpha() for c in text[begin:end]) >= MIN_CLAUSE_LETTERS:
            result.append((begin, end))
    return result


def _words(text: str) -> list[str]:
    return fold(text).split()


def _distance(a: str, b: str, limit: int) -> int:
    """Edit distance of a and b where swapping two neighbours counts as one typo (optimal
    string alignment), stopping early above `limit`."""
    rows = [list(range(len(b) + 1))]
    for i, char_a in enumerate(a, 1):
        row = [i]
        for j, char_b in enumerate(b, 1):
            cost = min(rows[-1][j] + 1, row[j - 1] + 1, rows[-1][j - 1] + (char_a != char_b))
            if i > 1 and j > 1 and char_a == b[j - 2] and a[i - 2] == char_b:
                cost = min(cost, rows[-2][j - 2] + 1)
            row.append(cost)
        if min(row) > limit:
            return limit + 1
        rows = [rows[-1], row]
    return rows[-1][-1]


def pipeline(c: float) -> Any:
    """Character 2-5-grams and word 1-2-grams, then a logistic regression (scikit-learn)."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    return make_pipeline(
        make_union(
            TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, max_features=40000),
            TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True),
        ),
        LogisticRegression(C=c, max_iter=3000),
    )


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER], is_trainable=True)
class ClauseClassifier(GraphComponent):
    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {"C": 10.0}

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        model: Any = None,
        vocabulary: set[str] | None = None,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.model = model
        self.vocabulary: set[str] = vocabulary or set()
        self._sorted_vocabulary = sorted(self.vocabulary)
        if model is not None:
            # Column-major weights: predict_proba multiplies by coef_.T, which scipy copied
            # (50 000 x 29 numbers) at every call when coef_ was row-major. Same values.
            classifier = model.steps[-1][1]
            classifier.coef_ = np.asfortranarray(classifier.coef_)

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> ClauseClassifier:
        return cls(config, model_storage, resource)

    # --- training -----------------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        examples = [e for e in training_data.intent_examples if e.get(TEXT) and e.get(INTENT)]
        texts = [fold(e.get(TEXT)) for e in examples]
        labels = [e.get(INTENT) for e in examples]
        model = pipeline(self.config["C"])
        model.fit(texts, labels)
        self.model = model
        self.vocabulary = self._in_scope_vocabulary(examples, training_data)
        self._sorted_vocabulary = sorted(self.vocabulary)
        with (
            self._model_storage.write_to(self._resource) as directory,
            open(Path(directory) / "clauses.pkl", "wb") as file,
        ):
            pickle.dump({"model": model, "vocabulary": self.vocabulary}, file)
        return self._resource

    @staticmethod
    def _in_scope_vocabulary(examples: Iterable[Message], training_data: TrainingData) -> set[str]:
        """Words and lemmas of the in-scope examples, of the entity synonyms and of the fiche.

        A word met in at most one in-scope example but in more out-of-scope ones ("bus",
        "machine": context of one story, subject of several off-topic questions) is left out:
        it is not a word of our topics."""
        inside: Counter = Counter()
        outside: Counter = Counter()
        for example in examples:
            words = set(_words(example.get(TEXT)))
            for token in example.get(SPACY_DOC) or ():
                words.update(_words(token.lemma_))
            (outside if example.get(INTENT) == OUT_OF_SCOPE else inside).update(words)
        vocabulary = {w for w, n in inside.items() if not (n <= 1 and outside[w] > n)}
        vocabulary.update(TIME_WORDS)
        for synonym, value in training_data.entity_synonyms.items():
            vocabulary.update(_words(synonym) + _words(value))
        if FICHE_FILE.exists():
            vocabulary.update(_words(FICHE_FILE.read_text(encoding="utf-8")))
        return {w for w in vocabulary if len(w) > 1}

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> ClauseClassifier:
        try:
            with (
                model_storage.read_from(resource) as directory,
                open(Path(directory) / "clauses.pkl", "rb") as file,
            ):
                saved = pickle.load(file)
        except (ValueError, FileNotFoundError):
            return cls(config, model_storage, resource)
        return cls(config, model_storage, resource, saved["model"], saved["vocabulary"])

    # --- prediction ---------------------------------------------------------------------

    def classify(self, texts: list[str]) -> list[tuple[str, float]]:
        # The pipeline's steps by hand: FeatureUnion.transform goes through joblib, whose
        # set-up cost more than the two vectorizers on one short message. Same matrix.
        union, classifier = self.model.steps[0][1], self.model.steps[-1][1]
        folded = [fold(t) for t in texts]
        features = scipy.sparse.hstack([t.transform(folded) for _, t in union.transformer_list]).tocsr()
        probabilities = classifier.predict_proba(features)
        classes = self.model.classes_
        return [(str(classes[row.argmax()]), float(row.max())) for row in probabilities]

    def _is_known(self, word: str) -> bool:
        """In the vocabulary, or a typo away from a word of it ("telephnoe", "abonement"): one
        for words of 5 to 9 letters, two from 10; shorter words must be spelt as we know them."""
        if word in self.vocabulary or word in TIME_WORDS or len(word) < 3 or any(c.isdigit() for c in word):
            return True  # clock times ("20h") and numbers are not things
        if len(word) < 5:
            return False
        allowed = 1 if len(word) < 10 else 2
        return any(
            known[0] == word[0]
            and abs(len(known) - len(word)) <= allowed
            and _distance(known, word, allowed) <= allowed
            for known in self._sorted_vocabulary
        )

    def unknown_nouns(self, doc: Any) -> list[str]:
        nouns = []
        for token in doc or ():
            # Proper names of places say where the customer is (abroad is handled apart).
            place = token.pos_ == "PROPN" and token.ent_type_ in ("LOC", "GPE")
            # X: what the small model cannot tag, often a name or an acronym ("l'agence BCI")
            if token.pos_ not in ("NOUN", "PROPN", "X") or place or not token.is_alpha:
                continue
            forms = set(_words(token.text)) | set(_words(token.lemma_))
            if forms and not any(self._is_known(f) for f in forms) and token.text not in nouns:
                nouns.append(token.text)
        return nouns

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            text = message.get(TEXT) or ""
            clauses: list[dict[str, Any]] = []
            whole: tuple[str, float] | None = None
            if self.model is not None and text:
                spans = split_clauses(text)
                clause_spans = spans if len(spans) > 1 else []
                # the clauses and the whole message in one call
                *predictions, whole = self.classify([text[s:e] for s, e in clause_spans] + [text])
                for (start, end), (intent, confidence) in zip(clause_spans, predictions, strict=True):
                    clauses.append(
                        {
                            "text": text[start:end],
                            "start": start,
                            "end": end,
                            "intent": intent,
                            "confidence": round(confidence, 4),
                        }
                    )
            message.set(CLAUSES_KEY, clauses, add_to_output=True)
            if whole is not None:
                # The whole message by the second classifier: when DIET hesitates (nlu_fallback),
                # the two agreeing is a better reason to answer than either alone.
                intent, confidence = whole
                message.set(
                    SECOND_OPINION_KEY,
                    {"name": intent, "confidence": round(confidence, 4)},
                    add_to_output=True,
                )
            message.set(UNKNOWN_NOUNS_KEY, self.unknown_nouns(message.get(SPACY_DOC)), add_to_output=True)
        return messages
