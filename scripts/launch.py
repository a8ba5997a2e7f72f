"""Start Rasa or the action server with the project's start-up: targeted warning filters.

    .venv/bin/python scripts/launch.py rasa ARGS...      # what `rasa ARGS...` does (train, run, shell)
    .venv/bin/python scripts/launch.py actions ARGS...   # what `python -m rasa_sdk ARGS...` does

Used by `make train`, `make run` and `make shell` (scripts/phase.py, scripts/start.py).
Production starts Rasa with deploy/rasa_run.py, which this does not change.

1. Warning filters. TensorFlow, Keras, Rasa, Sanic and the libraries they pin raise deprecation
   warnings at import time that nobody here can act on (they are in pinned third-party code),
   and they buried logs/rasa.log and logs/train.log. They are ignored by module (the module the
   warning is attributed to) and category; any other warning, our own code's first, still
   shows. Two libraries reset the filters behind our back, so the filters are installed again
   after them: Sanic's app module adds "once" for every DeprecationWarning when imported, and
   Rasa's main() adds "once" for every UserWarning (ahead of ours) before its start-up checks.
2. Readiness (`rasa run` only, when CHAT_CAGOU_READY_FILE is set, as scripts/start.py does):
   once Rasa has loaded its model, and before it listens, a JSON file says whether the agent
   is ready (model loaded) and what the model understood of a question parsed as a warm-up.
   GET / answers even when the model failed to load, so it cannot tell on its own.
3. Rasa's HTTP API (`rasa run` only) is on when RASA_AUTH_TOKEN is set (scripts/start.py sets
   a random one per start), behind that token: the console's live desk appends the staff
   messages through it.
"""

from __future__ import annotations

import json
import os
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# (category, module regex): deprecations raised by third-party code at import or start-up.
DEPRECATION_SOURCES = [
    r"tensorflow(\.|$)",
    r"tf_keras(\.|$)",
    r"keras(\.|$)",
    r"tensorflow_hub(\.|$)",
    r"tensorflow_addons(\.|$)",
    r"flatbuffers(\.|$)",
    r"google\.protobuf(\.|$)",
    r"absl(\.|$)",
    r"h5py(\.|$)",
    r"rasa(\.|$)",
    r"rasa_sdk(\.|$)",
    r"sanic(\.|$)",
    r"sanic_routing(\.|$)",
    r"sanic_cors(\.|$)",
    r"sanic_jwt(\.|$)",
    r"pkg_resources(\.|$)",
    r"packaging(\.|$)",
    r"matplotlib(\.|$)",
    r"spacy(\.|$)",
    r"thinc(\.|$)",
    r"aiogram(\.|$)",
    r"sqlalchemy(\.|$)",
    r"websockets(\.|$)",
    r"apscheduler(\.|$)",
    r"dask(\.|$)",
]

# Messages Rasa itself raises as UserWarning although nothing is wrong with this project:
# TF_DETERMINISTIC_OPS is set on purpose (deterministic training, Makefile), and there is no GPU.
EXPECTED_USER_WARNINGS = [
    r"You have set 'TF_DETERMINISTIC_OPS' to 1",
]


def install_warning_filters() -> None:
    """The filters above, ahead of every filter already installed."""
    for module in DEPRECATION_SOURCES:
        for category in (DeprecationWarning, PendingDeprecationWarning):
            warnings.filterwarnings("ignore", category=category, module=module)
    for message in EXPECTED_USER_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=UserWarning)


def _import_filter_resetters() -> None:
    """Import the modules that add their own global filters, then put ours back in front."""
    import sanic.app  # noqa: F401 (filterwarnings("once", category=DeprecationWarning) at import)

    install_warning_filters()


def _keep_filters_after_rasa_configures_warnings() -> None:
    import rasa.__main__ as rasa_main

    configure = rasa_main.configure_logging_and_warnings

    def configure_then_filter(*args, **kwargs):
        configure(*args, **kwargs)
        install_warning_filters()

    rasa_main.configure_logging_and_warnings = configure_then_filter


def _report_readiness(path: Path) -> None:
    """Write `path` (JSON) once `rasa run` has loaded its agent, before the server listens."""
    import rasa.core.run

    load_agent_on_start = rasa.core.run.load_agent_on_start  # scheduled "before_server_start"

    async def load_then_report(*args, **kwargs):
        agent = await load_agent_on_start(*args, **kwargs)
        report = {"pid": os.getpid(), "ready": bool(agent.is_ready())}
        if report["ready"]:
            report["model_id"] = agent.model_id
            try:
                # NLU only (no tracker, nothing stored); warms the graph up for the first user
                started = time.perf_counter()
                parsed = await agent.parse_message("code PUK ?")
                report["intent"] = (parsed.get("intent") or {}).get("name")
                report["warmup_seconds"] = round(time.perf_counter() - started, 2)
            except Exception as error:  # noqa: BLE001 (reported, and start.py fails on it)
                report["ready"] = False
                report["error"] = f"{type(error).__name__}: {error}"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(report), encoding="utf-8")
        tmp.replace(path)
        return agent

    rasa.core.run.load_agent_on_start = load_then_report


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("rasa", "actions"):
        sys.exit("usage: scripts/launch.py rasa|actions ARGS...")
    # like `python -m`: the project root, not scripts/, first on the path (actions, components...)
    if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
        sys.path[0] = str(ROOT)
    else:
        sys.path.insert(0, str(ROOT))
    # TensorFlow's C++ start-up messages (CUDA, oneDNN...), as the Makefile sets it
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    install_warning_filters()
    _import_filter_resetters()
    program, args = argv[0], argv[1:]
    if program == "actions":
        from rasa_sdk.__main__ import main as sdk_main

        sys.argv = ["rasa_sdk", *args]
        sdk_main()
        return
    _keep_filters_after_rasa_configures_warnings()
    ready_file = os.environ.get("CHAT_CAGOU_READY_FILE")
    if args[:1] == ["run"] and ready_file:
        _report_readiness(Path(ready_file))
    import rasa.__main__

    if args[:1] == ["run"] and os.environ.get("RASA_AUTH_TOKEN") and "--enable-api" not in args:
        # Rasa's HTTP API behind a token, for the console's live desk; the token is added here
        # rather than on the command line, where `ps` would show it.
        args = [*args, "--enable-api", "--auth-token", os.environ["RASA_AUTH_TOKEN"]]
    sys.argv = ["rasa", *args]
    rasa.__main__.main()


if __name__ == "__main__":
    main()
