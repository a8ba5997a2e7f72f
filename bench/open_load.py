"""Open-loop load: customers who write every few seconds, whatever the assistant's pace.

    .venv/bin/python bench/open_load.py                         # 50 and 200 customers, both setups
    .venv/bin/python bench/open_load.py --customers 50 --duration 60 --setup single
    .venv/bin/python bench/open_load.py --runs single:50 prod:200 --duration 600   # the issue's targets

Unlike bench/load.py (closed loop: each customer sends the next message once the answer
came, which measures capacity), here each customer waits an exponential think time (mean
`--think` seconds) before each message, then waits for the answer: the arrival rate is the
customers' (N / think messages per second), as on a real day, and a slow assistant sees its
queue grow. Every customer starts with a think time, so arrivals are spread from the start.
Measured per setup and number of customers: messages, offered and answered rate, latency
p50/p95/p99/max (first attempt to answer, retries included), HTTP errors, unanswered
messages, answers held back by the channel's per-customer limit, answers without their facts
(the facts of bench/load.py's script, from the fiche).
Results: bench/open_load_results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actions.answers import rate_limited  # noqa: E402
from bench.load import REQUEST_TIMEOUT, SETUP_NAMES, Outcome, ask, percentile, running_setup, script  # noqa: E402
from bench.machine import machine  # noqa: E402

RESULTS = ROOT / "bench" / "open_load_results.md"
RATE_LIMITED = rate_limited(0).split("0 seconde")[0]  # the limit's answer, before its wait
SEED = 42


async def customer(
    session: aiohttp.ClientSession, url: str, sender: str, think: float, until: float, rng: random.Random
) -> list[Outcome]:
    turns = script()
    outcomes = []
    while True:
        await asyncio.sleep(rng.expovariate(1 / think))
        if time.perf_counter() >= until:
            return outcomes
        question, facts = turns[len(outcomes) % len(turns)]
        outcomes.append(await ask(session, url, sender, question, facts))


async def run(url: str, customers: int, think: float, duration: float, prefix: str) -> list[Outcome]:
    rng = random.Random(SEED)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        turns = script()
        await asyncio.gather(
            *(ask(session, url, f"{prefix}-warmup-{i}", q, f) for i, (q, f) in enumerate(turns[:4]))
        )
        until = time.perf_counter() + duration
        per_customer = await asyncio.gather(
            *(
                customer(session, url, f"{prefix}-{i:03d}", think, until, random.Random(rng.random()))
                for i in range(customers)
            )
        )
    return [o for outcomes in per_customer for o in outcomes]


def summary(setup: str, customers: int, think: float, outcomes: list[Outcome], duration: float) -> dict:
    """`duration`: the time messages were sent in (the last answers may come after it)."""
    answered = [o for o in outcomes if o.latency is not None]
    latencies = [o.latency * 1000 for o in answered if o.latency is not None]
    # the first and the last minute apart: each customer's conversation grows for the whole run
    start = min((o.sent_at for o in outcomes), default=0.0)
    first = [o.latency * 1000 for o in answered if o.latency is not None and o.sent_at < start + 60]
    last = [
        o.latency * 1000 for o in answered if o.latency is not None and o.sent_at >= start + duration - 60
    ]
    return {
        "setup": setup,
        "customers": customers,
        "messages": len(outcomes),
        "offered": customers / think,
        "answered_rate": len(answered) / duration,
        "p50": percentile(latencies, 50),
        "p95": percentile(latencies, 95),
        "p99": percentile(latencies, 99),
        "p95_first_minute": percentile(first, 95),
        "p95_last_minute": percentile(last, 95),
        "max": max(latencies) if latencies else float("nan"),
        "errors": sum(len(o.errors) for o in outcomes),
        "unanswered": len(outcomes) - len(answered),
        "wrong": sum(1 for o in answered if not o.right and not held_back(o)),
        "held_back": sum(1 for o in answered if held_back(o)),
        "wrong_examples": wrong_examples(outcomes),
    }


def held_back(outcome: Outcome) -> bool:
    """Answered by the channel's per-customer limit (channels/guard.py, CHAT_CAGOU_RATE_LIMIT):
    with exponential think times a customer sometimes writes faster than a person can."""
    return outcome.answer.startswith(RATE_LIMITED)


def wrong_examples(outcomes: list[Outcome], keep: int = 5) -> list[str]:
    """The first answers without their facts, each with the customer's message before it and
    its place in the conversation (outcomes are in each customer's order)."""
    examples = []
    before: dict[str, tuple[int, str]] = {}
    for o in outcomes:
        turn, previous = before.get(o.sender, (0, ""))
        # a message the limit held back never reached the assistant: the context is older
        before[o.sender] = (turn + 1, o.question + (" (held back)" if held_back(o) else ""))
        if o.latency is not None and not o.right and not held_back(o) and len(examples) < keep:
            answer = o.answer.replace("\n", " / ")
            examples.append(
                f"{o.sender}, message {turn + 1} (after {previous!r}): {o.question!r} -> {answer!r}"
            )
    return examples


def bench(setup: str, customer_counts: list[int], think: float, duration: float, workdir: Path) -> list[dict]:
    results = []
    with running_setup(setup, workdir) as (base, _):
        for customers in customer_counts:
            outcomes = asyncio.run(
                run(base + "/webhooks/rest/webhook", customers, think, duration, f"open-{setup}-{customers}")
            )
            results.append(summary(SETUP_NAMES[setup], customers, think, outcomes, duration))
            print(results[-1], flush=True)
    return results


def write(results: list[dict], think: float, duration: float) -> None:
    lines = [
        "# Open-loop load (bench/open_load.py)",
        "",
        f"Run {datetime.now().strftime('%Y-%m-%d %H:%M')} on {machine()}. Each customer writes after an "
        f"exponential think time (mean {think:g} s), waits for the answer, and writes again, for {duration:g} s "
        + (
            "(the issue's 10 minutes)"
            if duration >= 600
            else "(the issue's 10 minutes, capped to what a benchmark run here allows)"
        )
        + "; the same 10 questions as "
        "bench/load.py in turn, facts checked. REST over loopback, the client (asyncio + aiohttp) on the same 2 "
        "cores as the servers. nginx's per-address limits raised for the run (every customer is 127.0.0.1).",
        "",
        "| setup | customers | messages | offered | answered | p50 | p95 | p99 | max | p95, first / last minute | HTTP errors | unanswered | held back by the per-customer limit | without their facts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r['setup']} | {r['customers']} | {r['messages']} | {r['offered']:.1f} msg/s | "
            f"{r['answered_rate']:.1f} msg/s | {r['p50']:.0f} ms | {r['p95']:.0f} ms | {r['p99']:.0f} ms | "
            f"{r['max']:.0f} ms | {r['p95_first_minute']:.0f} / {r['p95_last_minute']:.0f} ms | "
            f"{r['errors']} | {r['unanswered']} | {r['held_back']} | {r['wrong']} |"
        )
    examples = [
        f"- {r['setup']}, {r['customers']} customers: {e}" for r in results for e in r["wrong_examples"]
    ]
    if examples:
        lines += ["", "Answers without their facts (the first ones of each run):", "", *examples]
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--think", type=float, default=4.0, help="mean think time, seconds")
    parser.add_argument("--duration", type=float, default=120.0, help="seconds of load per run")
    parser.add_argument("--setup", choices=["prod", "single", "both"], default="both")
    parser.add_argument(
        "--runs",
        nargs="+",
        metavar="SETUP:CUSTOMERS",
        help="instead of --setup and --customers: e.g. single:50 prod:200",
    )
    args = parser.parse_args()
    plan: dict[str, list[int]] = {}
    if args.runs:
        for run_spec in args.runs:
            setup, _, count = run_spec.partition(":")
            if setup not in ("single", "prod") or not count.isdigit():
                parser.error(f"--runs: SETUP:CUSTOMERS with SETUP single or prod, not {run_spec!r}")
            plan.setdefault(setup, []).append(int(count))
    else:
        for setup in ("single", "prod") if args.setup == "both" else (args.setup,):
            plan[setup] = list(args.customers)
    args.customers = [c for counts in plan.values() for c in counts]
    if (
        not all(1 <= c <= 400 for c in args.customers)
        or not 0.5 <= args.think <= 60
        or not 5 <= args.duration <= 600
    ):
        parser.error("bounded load: 1-400 customers, think 0.5-60 s, 5-600 s")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    results: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="chat-cagou-open-load-") as tmp:
        for setup, counts in plan.items():
            results += bench(setup, counts, args.think, args.duration, Path(tmp))
    write(results, args.think, args.duration)


if __name__ == "__main__":
    main()
