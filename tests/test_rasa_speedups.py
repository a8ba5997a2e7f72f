"""components/rasa_speedups.py gives what Rasa's own code gives: the same predictions from the
model loaded without its one-step training, the same validation of action server replies,
the same event classes."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys

import pytest
from jsonschema import ValidationError, validate

import components  # noqa: F401  (installs the speedups, as loading the model does)
from harness.project import ROOT, quiet_env


def test_the_speedups_are_installed_by_importing_the_components():
    from rasa.core.actions.action import RemoteAction
    from rasa.core.agent import Agent
    from rasa.nlu.utils.spacy_utils import SpacyNLP
    from rasa.shared.core.events import Event
    from rasa.utils.tensorflow.models import RasaModel

    replaced_functions = (
        Agent._set_fingerprint,
        RasaModel.load,
        RemoteAction._validate_action_result,
        Event.resolve_by_type,
        SpacyNLP.load_model,
    )
    for replaced in replaced_functions:
        assert replaced.__module__ == "components.rasa_speedups"


VALID_REPLY = {
    "events": [{"event": "slot", "name": "procedure", "value": "code_puk", "timestamp": None}],
    "responses": [{"text": "Code PUK : en agence.", "buttons": [], "custom": {}}],
}
INVALID_REPLIES = [
    {"events": "pas une liste", "responses": []},
    {"events": [{"name": "procedure"}], "responses": []},  # an event without its type
    {"events": [], "responses": "pas une liste"},
]


def test_a_valid_action_reply_is_accepted():
    from rasa.core.actions.action import RemoteAction

    validate(VALID_REPLY, RemoteAction.action_response_format_spec())  # Rasa's way: no error
    assert RemoteAction("action_repondre", None)._validate_action_result(VALID_REPLY) is True


@pytest.mark.parametrize("reply", INVALID_REPLIES)
def test_an_invalid_action_reply_is_refused_with_rasas_error(reply):
    from rasa.core.actions.action import RemoteAction

    with pytest.raises(ValidationError) as rasa_way:
        validate(reply, RemoteAction.action_response_format_spec())
    with pytest.raises(ValidationError) as ours:
        RemoteAction("action_repondre", None)._validate_action_result(reply)
    assert ours.value.message.startswith(rasa_way.value.message + ". Failed to validate Action server")
    assert list(ours.value.path) == list(rasa_way.value.path)


def test_every_event_type_resolves_to_the_class_rasa_finds():
    from rasa.shared.core.events import Event
    from rasa.shared.utils.common import all_subclasses

    classes = all_subclasses(Event)
    for name in {cls.type_name for cls in classes}:
        expected = next(cls for cls in classes if cls.type_name == name)
        assert Event.resolve_by_type(name) is expected
        assert Event.resolve_by_type(name) is expected  # from the cache
    assert Event.resolve_by_type("topic") is None
    assert Event.resolve_by_type("inconnu", default=Event) is Event
    with pytest.raises(ValueError, match="Unknown event name"):
        Event.resolve_by_type("inconnu")


def test_spacy_is_loaded_once_per_process():
    from rasa.nlu.utils.spacy_utils import SpacyNLP

    first = SpacyNLP.load_model("fr_core_news_sm")
    assert SpacyNLP.load_model("fr_core_news_sm") is first
    assert first.model.lang == "fr" and first.model("code PUK")[1].text == "PUK"


def test_a_missing_spacy_model_still_gets_rasas_error():
    from rasa.nlu.model import InvalidModelError
    from rasa.nlu.utils.spacy_utils import SpacyNLP

    with pytest.raises(InvalidModelError, match="available spaCy model"):
        SpacyNLP.load_model("xx_modele_absent")


PARSE = """
import asyncio, json, sys
from harness.nlu_holdout import load_agent
from tests.test_rasa_speedups import summary
agent = load_agent()
texts = json.loads(sys.stdin.read())
async def run():
    return [summary(await agent.parse_message(t)) for t in texts]
print(json.dumps(asyncio.run(run())))
"""


def summary(parsed: dict) -> dict:
    """What a prediction decides: the intents ranked with their confidences, the entities."""
    return {
        "intents": [[i["name"], round(i["confidence"], 6)] for i in parsed["intent_ranking"]],
        "entities": [[e["entity"], e["value"], e["start"], e["end"]] for e in parsed["entities"]],
    }


@pytest.mark.model
def test_the_model_loaded_without_training_predicts_exactly_as_rasa_loads_it(nlu_agent):
    """The held-out set parsed by the model loaded here (speedups on) and by the model loaded
    by Rasa's own code in another process (CHAT_CAGOU_RASA_SPEEDUPS=0): same intents, same
    confidences to 6 decimals, same entities."""
    from harness.nlu_holdout import load_holdout

    texts = [e.text for e in load_holdout()][::3]

    async def parse_all() -> list[dict]:
        return [summary(await nlu_agent.parse_message(t)) for t in texts]

    ours = asyncio.run(parse_all())
    rasa_way = subprocess.run(
        [sys.executable, "-c", PARSE],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=quiet_env(CHAT_CAGOU_RASA_SPEEDUPS="0"),
        check=True,
        timeout=600,
    )
    expected = json.loads(rasa_way.stdout.strip().splitlines()[-1])
    assert len(ours) == len(expected) == len(texts)
    differences = [(t, o, e) for t, o, e in zip(texts, ours, expected, strict=True) if o != e]
    assert not differences, differences[:3]
    assert any(s["entities"] for s in ours)  # entities were compared too


def test_the_end_of_a_model_load_freezes_what_the_load_created():
    """Agent.load_model's last step (wrapped) moves every object alive then out of the garbage
    collector's reach (gc.freeze): a full collection no longer walks the model's objects
    (300-350 ms each under load before, bench/results.md)."""
    import gc

    from rasa.core.agent import Agent

    agent = Agent()
    created_by_the_load = [[n] for n in range(20_000)]  # lists: objects the collector tracks
    before = gc.get_freeze_count()
    agent._set_fingerprint("test")
    assert gc.get_freeze_count() >= before + len(created_by_the_load)
    assert agent.fingerprint == "test"  # Rasa's own step still done
