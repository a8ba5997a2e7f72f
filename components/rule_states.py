"""The rule policy's dialogue states, carried on from one prediction to the next.

To predict, Rasa's RulePolicy turns the conversation into one state per turn
(`Domain.states_for_tracker_history`): it replays every event of the session into a fresh
tracker and builds a state at each action. It does so three times per turn (two predictions,
one of them matching rules by text and by intent), so a turn's cost grows with the session:
0.9 ms per call at 350 events, 2.6 ms of a 26 ms turn (issue 15, bench/turn_profile.md).

Here the replay of a conversation's tracker is kept on that tracker: the next call replays
only the events added since, when the events replayed before are still, object for object,
the first of its applied events (the tracker cache keeps a conversation's tracker between
turns, so one replay serves the whole session). Anything else (events undone, a session
restarted, another tracker) replays from the start as Rasa does. The states returned are
copies: a caller changing them changes nothing kept. tests/test_rule_states.py compares the
states with Rasa's for whole conversations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ATTRIBUTE = "_chat_cagou_rule_states"  # the replay, kept on the tracker it replays
rasa_states_for_tracker_history: Any = None  # Rasa's own, once installed (the tests compare)
replays_from_start = 0  # calls that could not carry a replay on (the tests count them)


@dataclass
class _Replay:
    key: tuple[Any, ...]  # the domain and the arguments the states were built for
    tracker: Any  # DialogueStateTracker: the state after `applied`
    rule_only_data: dict[str, Any] | None
    applied: list[Any] = field(default_factory=list)  # the applied events replayed, in order
    states: list[dict[str, Any]] = field(default_factory=list)  # the states before each action
    last_ml_action_sub_state: Any = None
    turn_was_hidden: bool = False


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    # a state's sub-states are dicts of strings and tuples: two levels copy it all
    return {name: dict(sub) if isinstance(sub, dict) else sub for name, sub in state.items()}


def _step(domain: Any, replay: _Replay, hide_rule_turn: bool) -> Any:
    """One turn of Rasa's loop in Domain.states_for_tracker_history: the state the replay's
    tracker is in, or None for a hidden rule turn; updates the replay's flags."""
    tracker = replay.tracker
    _, omit_unset_slots, ignore_rule_only_turns, _ = replay.key
    if ignore_rule_only_turns:
        if not replay.turn_was_hidden:
            replay.last_ml_action_sub_state = domain._get_prev_action_sub_state(tracker)
        if not tracker.followup_action and tracker.latest_action_name != tracker.active_loop_name:
            replay.turn_was_hidden = hide_rule_turn
        if replay.turn_was_hidden:
            return None
    state = domain.get_active_state(tracker, omit_unset_slots=omit_unset_slots)
    if ignore_rule_only_turns:
        domain._remove_rule_only_features(state, replay.rule_only_data)
        if replay.states:
            domain._substitute_rule_only_user_input(state, replay.states[-1])
        if replay.last_ml_action_sub_state:
            state["prev_action"] = replay.last_ml_action_sub_state
    return domain._clean_state(state)


def install() -> None:
    from rasa.shared.core.domain import Domain
    from rasa.shared.core.events import ActionExecuted
    from rasa.shared.core.trackers import DialogueStateTracker

    global rasa_states_for_tracker_history
    rasa_states = rasa_states_for_tracker_history = Domain.states_for_tracker_history

    def states_for_tracker_history(
        self: Domain,
        tracker: DialogueStateTracker,
        omit_unset_slots: bool = False,
        ignore_rule_only_turns: bool = False,
        rule_only_data: dict[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        global replays_from_start
        # Training's trackers (TrackerWithCachedStates) cache their own states.
        if type(tracker) is not DialogueStateTracker:
            return rasa_states(self, tracker, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        key = (id(self), omit_unset_slots, ignore_rule_only_turns, repr(rule_only_data))
        applied = tracker.applied_events()
        replay: _Replay | None = tracker.__dict__.get(ATTRIBUTE)
        if (
            replay is None
            or replay.key != key
            or len(replay.applied) > len(applied)
            or any(a is not b for a, b in zip(replay.applied, applied, strict=False))
        ):
            replays_from_start += 1
            replay = _Replay(key, tracker.init_copy(), rule_only_data)
            tracker.__dict__[ATTRIBUTE] = replay
        for event in applied[len(replay.applied) :]:
            if isinstance(event, ActionExecuted):
                state = _step(self, replay, event.hide_rule_turn)
                if state is not None:
                    replay.states.append(state)
            replay.tracker.update(event)
        replay.applied = applied
        # The state after the last event is not kept: the next event changes it.
        flags = (replay.last_ml_action_sub_state, replay.turn_was_hidden)
        last = _step(self, replay, False)
        replay.last_ml_action_sub_state, replay.turn_was_hidden = flags
        states = [_copy(state) for state in replay.states]
        return states + [_copy(last)] if last is not None else states

    Domain.states_for_tracker_history = states_for_tracker_history
