"""components/rule_states.py: the rule policy's dialogue states, carried on from one call to
the next, are Rasa's states, whatever the conversation.

Conversations are drawn at random (fixed seeds) from every kind of event that changes the
states: messages, actions (rule turns hidden or not), slots that count and slots that do not, a
form that starts, is rejected, interrupted and ends, follow-up actions, undone actions and
messages, restarts and new sessions. After each event, the states of the tracker that grows
turn by turn are compared with those of Rasa's own function, for the four ways the rule
policy and the other policies ask for them.
"""

from __future__ import annotations

import random

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted,
    ActionExecutionRejected,
    ActionReverted,
    ActiveLoop,
    BotUttered,
    FollowupAction,
    LoopInterrupted,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUtteranceReverted,
    UserUttered,
)
from rasa.shared.core.trackers import DialogueStateTracker

import components  # noqa: F401  (installs the speedups, as loading the model does)
from components import rule_states

DOMAIN = Domain.from_yaml(
    """
version: "3.1"
intents: [bonjour, code_puk, horaires, refus]
entities: [canal]
slots:
  canal:
    type: categorical
    values: [telephone, agence]
    mappings: [{type: from_entity, entity: canal}]
  sujet:
    type: text
    influence_conversation: false
    mappings: [{type: custom}]
  rappel_nom:
    type: text
    mappings: [{type: custom}]
forms:
  rappel_form:
    required_slots: [rappel_nom]
responses:
  utter_bonjour: [{text: "Bonjour"}]
actions: [action_repondre, action_accueil]
"""
)
ACTIONS = ["action_listen", "action_repondre", "action_accueil", "utter_bonjour", "rappel_form"]
RULE_ONLY = {"slots": ["rappel_nom"], "loops": ["rappel_form"]}
WAYS = [(False, False, None), (True, False, None), (False, True, RULE_ONLY), (True, True, RULE_ONLY)]


def random_event(rng: random.Random):
    kind = rng.choices(
        ["user", "action", "slot", "loop", "rejected", "followup", "bot", "undo", "restart"],
        weights=[20, 30, 12, 6, 3, 3, 10, 3, 1],
    )[0]
    if kind == "user":
        entities = [{"entity": "canal", "value": "agence"}] if rng.random() < 0.3 else []
        return UserUttered("…", {"name": rng.choice(DOMAIN.intents), "confidence": 0.9}, entities)
    if kind == "action":
        return ActionExecuted(rng.choice(ACTIONS), hide_rule_turn=rng.random() < 0.3)
    if kind == "slot":
        name = rng.choice(["canal", "sujet", "rappel_nom", "requested_slot"])
        value = {"canal": rng.choice(["telephone", "agence", None]), "requested_slot": "rappel_nom"}.get(
            name, "x"
        )
        return SlotSet(name, value)
    if kind == "loop":
        return ActiveLoop(rng.choice(["rappel_form", None]))
    if kind == "rejected":
        return rng.choice([ActionExecutionRejected("rappel_form"), LoopInterrupted(rng.random() < 0.5)])
    if kind == "followup":
        return FollowupAction("action_repondre")
    if kind == "bot":
        return BotUttered("réponse")
    if kind == "undo":
        return rng.choice([ActionReverted(), UserUtteranceReverted()])
    return rng.choice([Restarted(), SessionStarted()])


@pytest.mark.parametrize("seed", range(12))
def test_the_states_carried_on_are_rasas_after_every_event(seed):
    rng = random.Random(seed)
    trackers = [DialogueStateTracker(f"client-{i}", DOMAIN.slots) for i in range(len(WAYS))]
    from_start = rule_states.replays_from_start
    for _ in range(160):
        event = random_event(rng)
        for tracker, (omit, ignore, rule_only) in zip(trackers, WAYS, strict=True):
            tracker.update(event, DOMAIN)
            ours = DOMAIN.states_for_tracker_history(tracker, omit, ignore, rule_only)
            rasas = rule_states.rasa_states_for_tracker_history(DOMAIN, tracker, omit, ignore, rule_only)
            assert ours == rasas
    # carried on, not replayed from the start at each call: only after an undo or a restart
    assert rule_states.replays_from_start - from_start < 0.25 * 160 * len(WAYS)


def test_a_caller_changing_the_states_changes_nothing_kept():
    tracker = DialogueStateTracker("client", DOMAIN.slots)
    for event in [
        ActionExecuted("action_listen"),
        UserUttered("code ?", {"name": "code_puk", "confidence": 0.9}),
        ActionExecuted("action_repondre"),
        ActionExecuted("action_listen"),
        UserUttered("bonjour", {"name": "bonjour", "confidence": 0.9}),
    ]:
        tracker.update(event, DOMAIN)
    before = DOMAIN.states_for_tracker_history(tracker)
    for state in DOMAIN.states_for_tracker_history(tracker):  # what RulePolicy's featurizer does
        for sub in state.values():
            sub.clear()
    assert DOMAIN.states_for_tracker_history(tracker) == before
    assert before == rule_states.rasa_states_for_tracker_history(DOMAIN, tracker)


def test_a_tracker_rebuilt_from_the_same_events_is_replayed_from_the_start():
    tracker = DialogueStateTracker("client", DOMAIN.slots)
    for event in [ActionExecuted("action_listen"), UserUttered("x", {"name": "horaires", "confidence": 1.0})]:
        tracker.update(event, DOMAIN)
    DOMAIN.states_for_tracker_history(tracker)
    first = tracker.__dict__[rule_states.ATTRIBUTE]
    tracker.events[-1] = UserUttered("y", {"name": "refus", "confidence": 1.0})  # same length, other event
    states = DOMAIN.states_for_tracker_history(tracker)
    assert tracker.__dict__[rule_states.ATTRIBUTE] is not first
    assert states == rule_states.rasa_states_for_tracker_history(DOMAIN, tracker)
    assert states[-1]["user"]["intent"] == "refus"
