"""`make profile`: where one turn's time goes, from the request to the reply (issue 15).

    .venv/bin/python bench/turn_profile.py            # 200 turns of one conversation, table printed
    .venv/bin/python bench/turn_profile.py --write    # and bench/turn_profile.md

The trained model is loaded in this process as `rasa run` loads it (Agent.load, the endpoints
of the single-process default: action server on a free port, SQLite tracker store in a
temporary directory) and one long conversation is played through `agent.handle_message` with
the project's REST output collector. Two instruments:
- wall time per stage: every node of Rasa's graphs (each NLU component, each policy, the
  ensemble), the action server call (`RemoteAction.run`, HTTP included), the tracker store
  load and save, and the whole turn; counted per turn, for turns 1-20 and 181-200 apart, which
  shows what grows with the conversation's length;
- cProfile over turns 21-60: the functions where the CPU goes (own time).
Then the same questions over HTTP against `rasa run` (harness/servers.py): what the server,
Sanic and the channel add to the in-process turn.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import functools
import gc
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench import QUESTIONS, rest_latency  # noqa: E402
from bench.machine import machine  # noqa: E402
from harness.project import MODEL, quiet_env  # noqa: E402

RESULTS = ROOT / "bench" / "turn_profile.md"
TURNS = 200
EARLY = range(0, 20)  # turns 1-20
LATE = range(180, 200)  # turns 181-200
PROFILED = range(20, 60)  # cProfile: turns 21-60


class Stages:
    """Wall time per stage and per turn: {turn: {stage: [seconds, calls]}}."""

    def __init__(self) -> None:
        self.turn = -1  # the warm-up's turns
        self.times: dict[int, dict[str, list[float]]] = defaultdict(lambda: defaultdict(lambda: [0.0, 0]))

    def add(self, stage: str, seconds: float) -> None:
        cell = self.times[self.turn][stage]
        cell[0] += seconds
        cell[1] += 1

    def mean(self, turns: range, stage: str) -> tuple[float, float]:
        """Mean milliseconds per turn and mean calls per turn over `turns`."""
        cells = [self.times[t].get(stage, [0.0, 0]) for t in turns]
        return 1000 * statistics.mean(c[0] for c in cells), statistics.mean(c[1] for c in cells)

    def names(self) -> list[str]:
        return sorted({s for per_turn in self.times.values() for s in per_turn})


def _timed_sync(fn: Callable[..., Any], stage: Callable[..., str], stages: Stages) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            stages.add(stage(*args), time.perf_counter() - started)

    return wrapper


def _timed_async(fn: Callable[..., Any], stage: str, stages: Stages) -> Callable[..., Any]:
    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await fn(*args, **kwargs)
        finally:
            stages.add(stage, time.perf_counter() - started)

    return wrapper


def instrument(stages: Stages) -> None:
    """Wrap the stages before the model is loaded (a graph node binds its function at creation)."""
    from rasa.core.actions.action import RemoteAction
    from rasa.core.processor import MessageProcessor
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.engine.graph import GraphNode

    def node_name(node: GraphNode, *_: Any) -> str:
        return f"graph node {node._node_name}"

    GraphNode.__call__ = _timed_sync(GraphNode.__call__, node_name, stages)  # type: ignore[method-assign]
    # turn -1 holds the model load: each graph node's constructor (TensorFlow graphs, spaCy...)
    GraphNode._load_component = _timed_sync(  # type: ignore[method-assign]
        GraphNode._load_component, lambda node, *_: f"load {node._node_name}", stages
    )
    RemoteAction.run = _timed_async(RemoteAction.run, "action server call (HTTP)", stages)  # type: ignore[method-assign]
    SQLTrackerStore.retrieve = _timed_async(SQLTrackerStore.retrieve, "tracker store: load", stages)  # type: ignore[method-assign]
    SQLTrackerStore.save = _timed_async(SQLTrackerStore.save, "tracker store: save", stages)  # type: ignore[method-assign]
    MessageProcessor.handle_message = _timed_async(  # type: ignore[method-assign]
        MessageProcessor.handle_message, "whole turn (handle_message)", stages
    )


@contextmanager
def action_server(workdir: Path) -> Iterator[str]:
    from harness.ports import free_port
    from harness.processes import spawn, stop
    from harness.waiting import wait_http

    port = free_port()
    log = workdir / "actions.log"
    # under cProfile: Sanic exits normally on SIGTERM, and cProfile then writes its file
    command = ["-m", "cProfile", "-o", str(workdir / "actions.prof"), "-m", "rasa_sdk"]
    proc = spawn([sys.executable, *command, "--actions", "actions", "--port", str(port)], log, quiet_env())
    try:
        wait_http(f"http://127.0.0.1:{port}/health", proc, log)
        yield f"http://127.0.0.1:{port}/webhook"
    finally:
        stop(proc)


ACTION_PATH = ("rasa_sdk/executor.py", "rasa_sdk/endpoint.py", "rasa_sdk/interfaces.py", "/actions/")


def actions_table(workdir: Path, calls: int, rows: int = 14) -> str:
    """The action server's functions on a request's path (rasa_sdk's endpoint and executor, our
    actions) with the most cumulative time per action call."""
    stats = pstats.Stats(str(workdir / "actions.prof"), stream=io.StringIO())
    entries = sorted(
        (
            (cumulative, n, path, line, name)
            for (path, line, name), (_, n, _own, cumulative, _callers) in stats.stats.items()  # type: ignore[attr-defined]
            if any(part in path for part in ACTION_PATH) and n >= calls // 2
        ),
        reverse=True,
    )[:rows]
    lines = [
        "| function (action server) | calls per action call | cumulative ms per call |",
        "| --- | ---: | ---: |",
    ]
    for cumulative, n, path, line, name in entries:
        where = path.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        lines.append(f"| `{where}:{line}({name})` | {n / calls:.1f} | {1000 * cumulative / calls:.2f} |")
    return "\n".join(lines)


class Collections:
    """Python's garbage collections while the conversation plays (gc.callbacks): a full
    collection stops every customer's turn for as long as it takes."""

    def __init__(self) -> None:
        self.pauses: dict[int, list[float]] = defaultdict(list)  # generation -> milliseconds
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(1000 * (time.perf_counter() - self._started))

    def summary(self) -> str:
        full = self.pauses.get(2, [])
        return (
            f"- garbage collector over the {TURNS} turns: {len(full)} full collections"
            + (f", the longest {max(full):.0f} ms" if full else "")
            + f"; {sum(len(p) for p in self.pauses.values())} in all, "
            f"{sum(sum(p) for p in self.pauses.values()):.0f} ms in all; objects frozen out of its "
            f"reach once the model loaded (components/rasa_speedups.py): {gc.get_freeze_count():,}"
        )


def play(workdir: Path, action_url: str, stages: Stages, collections: Collections) -> tuple[str, float]:
    """One conversation of TURNS messages in process; (cProfile table, model load seconds)."""
    import logging

    import uvloop
    from rasa.core.agent import Agent
    from rasa.core.channels.channel import UserMessage
    from rasa.core.tracker_store import SQLTrackerStore
    from rasa.utils.endpoints import EndpointConfig
    from rasa.utils.log_utils import configure_structlog

    import components  # noqa: F401  (its speedups, the tracker cache among them, timed as served)
    from channels.rest import AnswerCollector

    configure_structlog(logging.WARNING)
    instrument(stages)
    started = time.perf_counter()
    agent = Agent.load(
        str(MODEL),
        action_endpoint=EndpointConfig(url=action_url),
        tracker_store=SQLTrackerStore(dialect="sqlite", db=str(workdir / "tracker.db")),
    )
    loaded = time.perf_counter() - started
    profiler = cProfile.Profile()

    async def conversation() -> None:
        stages.turn = -2  # warm-up (TensorFlow's first calls), not measured
        for question in QUESTIONS:
            await agent.handle_message(UserMessage(question, AnswerCollector(), "warm-up"))
        gc.callbacks.append(collections)
        for turn in range(TURNS):
            stages.turn = turn
            if turn == PROFILED.start:
                profiler.enable()
            message = UserMessage(QUESTIONS[turn % len(QUESTIONS)], AnswerCollector(), "profile")
            await agent.handle_message(message)
            if turn == PROFILED.stop - 1:
                profiler.disable()
        gc.callbacks.remove(collections)

    uvloop.install()  # the event loop `rasa run` serves on (Sanic)
    asyncio.run(conversation())
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    return cprofile_table(stats), loaded


def cprofile_table(stats: pstats.Stats, rows: int = 20) -> str:
    """The functions with the most own time (tottime) over the profiled turns, per turn."""
    turns = len(PROFILED)
    entries = sorted(stats.stats.items(), key=lambda item: item[1][2], reverse=True)[:rows]  # type: ignore[attr-defined]
    lines = [
        "| function | calls per turn | own ms per turn | cumulative ms per turn |",
        "| --- | ---: | ---: | ---: |",
    ]
    for (path, line, name), (_, calls, own, cumulative, _callers) in entries:
        where = path.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
        lines.append(
            f"| `{where}:{line}({name})` | {calls / turns:.0f} | {1000 * own / turns:.2f} | "
            f"{1000 * cumulative / turns:.2f} |"
        )
    return "\n".join(lines)


def load_table(stages: Stages, rows: int = 8) -> str:
    """The slowest graph nodes to load (turn -1: Agent.load)."""
    loads = sorted(
        ((cell[0], name) for name, cell in stages.times[-1].items() if name.startswith("load ")),
        reverse=True,
    )[:rows]
    lines = ["| graph node loaded | seconds |", "| --- | ---: |"]
    lines += [f"| {name.removeprefix('load ')} | {seconds:.1f} |" for seconds, name in loads]
    return "\n".join(lines)


def stage_table(stages: Stages) -> str:
    rows = []
    for name in stages.names():
        early, early_calls = stages.mean(EARLY, name)
        late, late_calls = stages.mean(LATE, name)
        rows.append((early, late, early_calls, late_calls, name))
    rows.sort(key=lambda r: r[0], reverse=True)
    lines = [
        "| stage | calls per turn | ms per turn, turns 1-20 | ms per turn, turns 181-200 |",
        "| --- | ---: | ---: | ---: |",
    ]
    for early, late, early_calls, late_calls, name in rows:
        if (early < 0.05 and late < 0.05) or name.startswith("load "):
            continue
        calls = f"{early_calls:g}" if early_calls == late_calls else f"{early_calls:g} / {late_calls:g}"
        lines.append(f"| {name} | {calls} | {early:.1f} | {late:.1f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write bench/turn_profile.md")
    parser.add_argument("--no-rest", action="store_true", help="skip the REST comparison")
    args = parser.parse_args()
    stages = Stages()
    collections = Collections()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        with action_server(workdir) as url:
            cprofile, loaded = play(workdir, url, stages, collections)
        action_calls = sum(int(cells["action server call (HTTP)"][1]) for cells in stages.times.values())
        actions = actions_table(workdir, action_calls)
    rest = None if args.no_rest else statistics.median(rest_latency())  # `make bench`'s one customer
    in_process = statistics.median(  # the turns without cProfile's overhead
        1000 * stages.times[t]["whole turn (handle_message)"][0] for t in [*EARLY, *LATE]
    )
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    report = [
        "# Where a turn's time goes (`make profile`, bench/turn_profile.py)",
        "",
        f"Run {when} on {machine()}. One conversation of {TURNS} messages (the {len(QUESTIONS)} "
        "questions of `make bench` in turn) played in process against the trained model, the "
        "action server and a SQLite tracker store, as `make run` serves them.",
        "",
        f"- model load in process (Agent.load): {loaded:.1f} s",
        f"- median turn in process: {in_process:.1f} ms"
        + ("" if rest is None else f"; over REST (`rasa run`, one customer): {rest:.1f} ms"),
        collections.summary(),
        "",
        "## Model load: the slowest components",
        "",
        load_table(stages),
        "",
        "## Wall time per stage (mean per turn; graph nodes are Rasa's NLU and policy components)",
        "",
        stage_table(stages),
        "",
        "## The action server's side of a call (cProfile of the action server, whole run)",
        "",
        actions,
        "",
        f"## cProfile, turns {PROFILED.start + 1}-{PROFILED.stop} (own time per turn, top 20)",
        "",
        cprofile,
        "",
    ]
    text = "\n".join(report)
    print(text)
    if args.write:
        RESULTS.write_text(text)
        print(f"written to {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
