"""Seven overheads of Rasa 3.6 that cost the customer time and change nothing, removed.

Measured by `make profile` (bench/turn_profile.md, issue 15); each replacement gives the same
result as Rasa's code (tests/test_rasa_speedups.py compares them):

1. Loading a TensorFlow model (DIET) trained it for one step on one example to create its
   weights before loading the real ones: 18 s of the 25 s a model took to load. Here the
   weights are created by one prediction (eager), the trained weights loaded over them, then
   the prediction graph traced as Rasa does. Same predictions, 10 s instead of 28 s.
2. Every action server reply was validated with `jsonschema.validate`, which checks the
   schema itself before the reply, each time: 11 ms per turn. The validator is built once.
3. Each event read from the tracker store or the action server looked its class up by walking
   every subclass of `Event` (about 40 recursive calls per event). The lookup is cached.
4. spaCy's model was loaded twice, by the graph node that provides it and by the node that
   runs it (which only uses the one provided): 160 MB of resident memory and 1 s of start-up.
   Both nodes now get the same loaded model.
5. The SQL tracker store rebuilt the whole conversation from the database at every message,
   a cost that grew with the conversation: components/tracker_cache.py keeps it in memory
   between turns, checked against the database at each one.
6. Python's garbage collector walked the loaded model's millions of objects (TensorFlow,
   spaCy, Rasa's graph) at each full collection: 300-350 ms during which no customer was
   answered, a dozen times a minute under load. Once the model is loaded, its objects are
   moved out of the collector's reach (`gc.freeze`): they live as long as the process; and
   the memory the load freed is given back to the system (`malloc_trim`).
7. The rule policy replayed the whole session three times per turn to build its dialogue
   states: components/rule_states.py keeps the replay on the tracker and adds each turn's
   events to it.

Installed when the model's components are imported (components/__init__.py), that is in every
process that loads the model (`rasa run`, `rasa train`, the tests, the benchmarks), before the
model loads. CHAT_CAGOU_RASA_SPEEDUPS=0 leaves Rasa as it is (to compare, or to rule them out).
"""

from __future__ import annotations

import os
from typing import Any

from components import rule_states, tracker_cache

ENV_SWITCH = "CHAT_CAGOU_RASA_SPEEDUPS"
_installed = False


def install() -> None:
    """Replace the seven functions, once per process (unless CHAT_CAGOU_RASA_SPEEDUPS=0)."""
    global _installed
    if _installed or os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return
    _installed = True
    _load_weights_without_training()
    _validate_action_replies_with_one_validator()
    _cache_event_classes()
    _load_spacy_once()
    tracker_cache.install()
    rule_states.install()
    _freeze_the_loaded_model()


def _load_weights_without_training() -> None:
    from rasa.utils import train_utils
    from rasa.utils.tensorflow.models import RasaModel

    rasa_load = RasaModel.load.__func__

    def load(
        cls: type[RasaModel],
        model_file_name: str,
        model_data_example: Any,
        predict_data_example: Any = None,
        finetune_mode: bool = False,
        *args: Any,
        **kwargs: Any,
    ) -> RasaModel:
        if finetune_mode or predict_data_example is None:  # training goes on: Rasa's way
            return rasa_load(
                cls, model_file_name, model_data_example, predict_data_example, finetune_mode, *args, **kwargs
            )
        model = cls(*args, **kwargs)
        batches, _ = train_utils.create_data_generators(
            model_data=predict_data_example, batch_sizes=1, epochs=1, shuffle=False
        )
        model.predict_step(next(iter(batches))[0])  # eager: creates the weights
        model.load_weights(model_file_name).expect_partial()  # the optimizer's state is not needed
        model.prepared_for_prediction = False  # label embeddings computed again, with the weights
        model.run_inference(predict_data_example)  # traces the prediction graph, as Rasa does
        return model

    RasaModel.load = classmethod(load)


def _validate_action_replies_with_one_validator() -> None:
    from jsonschema import ValidationError, validators
    from jsonschema.exceptions import best_match
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
        error = best_match(validator.iter_errors(result))
        if error is None:
            return True
        error.message += (  # Rasa's message, word for word
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        assert isinstance(error, ValidationError)
        raise error

    RemoteAction._validate_action_result = validate_action_result


def _cache_event_classes() -> None:
    from rasa.shared.core.events import Event

    rasa_resolve = Event.resolve_by_type
    found: dict[str, type[Event]] = {}

    def resolve_by_type(type_name: str, default: type[Event] | None = None) -> type[Event] | None:
        if type_name not in found:
            cls = rasa_resolve(type_name, default)  # raises for an unknown name, as Rasa does
            if cls is None or cls is default:
                return cls  # "topic" or the default: not cached, a subclass may come later
            found[type_name] = cls
        return found[type_name]

    Event.resolve_by_type = staticmethod(resolve_by_type)


def _load_spacy_once() -> None:
    from rasa.nlu.utils.spacy_utils import SpacyModel, SpacyNLP

    rasa_load_model = SpacyNLP.load_model
    loaded: dict[str, SpacyModel] = {}

    def load_model(spacy_model_name: str) -> SpacyModel:
        if spacy_model_name not in loaded:  # Rasa's errors for a missing name or model, unchanged
            loaded[spacy_model_name] = rasa_load_model(spacy_model_name)
        return loaded[spacy_model_name]

    SpacyNLP.load_model = staticmethod(load_model)


def _freeze_the_loaded_model() -> None:
    import gc

    from rasa.core.agent import Agent

    gc.freeze()  # what Rasa and TensorFlow imported so far: modules, classes, for good
    # Installed while the model loads (its components are imported by the loading), so
    # Agent.load_model is already running: its last step, looked up after the load, is wrapped.
    rasa_set_fingerprint = Agent._set_fingerprint

    def set_fingerprint(self: Agent, *args: Any, **kwargs: Any) -> None:
        rasa_set_fingerprint(self, *args, **kwargs)
        gc.collect()  # what is garbage now is not frozen
        gc.freeze()  # a model loaded again later leaves its cycles uncollected: one model per server
        _return_freed_memory()

    Agent._set_fingerprint = set_fingerprint


def _return_freed_memory() -> None:
    """The load freed much of what it read (the cities file: 70 MB parsed, 20 kept), but the C
    library keeps freed memory for later unless asked to give it back to the system."""
    import contextlib
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError):  # not glibc: nothing to ask
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
