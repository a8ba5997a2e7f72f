"""MessageCleaner: the text the NLU reads, without markup or links.

Runs first in the pipeline. It changes only what the NLU sees: the tracker keeps the text as
the customer sent it (Rasa stores `UserMessage.text`, not the parsed text).
"""

from __future__ import annotations

import html
import re

from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.shared.nlu.constants import TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from components.base import StatelessComponent

# Script and style elements carry code, not words; a link's text is a link ("clique ici"):
# dropped with their content, like the URLs themselves.
_CODE_ELEMENT = re.compile(r"<\s*(script|style|a)\b[^>]*>.*?(<\s*/\s*\1\s*>|$)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"</?[A-Za-z][^<>]{0,300}>|<!--.*?-->", re.DOTALL)
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"']+", re.IGNORECASE)
_SPACES = re.compile(r"[ \t]+")


def clean_for_nlu(text: str) -> str:
    """`text` without HTML elements and URLs, entities decoded, spaces collapsed."""
    text = _CODE_ELEMENT.sub(" ", text)
    text = _TAG.sub(" ", text)
    text = html.unescape(text)
    text = _URL.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


@DefaultV1Recipe.register([DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER], is_trainable=False)
class MessageCleaner(StatelessComponent):
    def _clean(self, message: Message) -> None:
        text = message.get(TEXT)
        if isinstance(text, str) and text:
            cleaned = clean_for_nlu(text)
            # A message that was only markup stays as it was: the NLU sees it as out of scope.
            message.set(TEXT, cleaned or text, add_to_output=True)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        # Examples with annotated entities keep their text: their offsets point into it.
        for example in training_data.training_examples:
            if not example.get("entities"):
                self._clean(example)
        return training_data

    def process(self, messages: list[Message]) -> list[Message]:
        for message in messages:
            self._clean(message)
        return messages
