"""Load benchmark: many customers at once, production topology vs the single-process default.

    .venv/bin/python bench/load.py                      # both setups, 50 conversations x 20 messages
    .venv/bin/python bench/load.py --setup prod --conversations 10 --messages 10

A bounded load on loopback only: `--conversations` customers write at the same time, each
sending `--messages` messages one after the other (the next once the answer came), through
the REST channel, with an asyncio + aiohttp client. Each setup is started here, measured,
then stopped:
- prod: deploy/prod.py, what `make run-prod` starts (2 Rasa instances behind nginx,
  PostgreSQL tracker store in a database of its own, Redis lock store, action server);
- single: what `make run` starts (one Rasa, SQLite tracker store, in-memory lock store).

Measured: throughput (messages per second of wall time), latency p50/p95/p99 of each
message (first attempt to answer), HTTP errors, client retries, lost messages (no answer
after the retries, or missing from the tracker store afterwards) and the share of answers
carrying the right facts (each question's expected facts come from the fiche,
actions.fiche.load_fiche()). Results: bench/load_results.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actions.answers import channel_phrase  # noqa: E402
from actions.fiche import hour_text, load_fiche  # noqa: E402
from actions.markdown import plain  # noqa: E402
from harness.servers import running_servers  # noqa: E402
from harness.topology import running_prod  # noqa: E402

RESULTS = ROOT / "bench" / "load_results.md"
RETRIES = 4
REQUEST_TIMEOUT = 120


def script() -> list[tuple[str, list[str]]]:
    """Ten questions (two of them follow-ups that need the context) and their facts."""
    fiche = load_fiche()
    service = fiche.phones["1000"]
    label = {k: p.label for k, p in fiche.procedures.items()}

    def yes_by(procedure: str, channel: str) -> list[str]:
        """A follow-up answered "yes" for that channel, about that procedure (actions/answers.py)."""
        return [f"Oui, {channel_phrase(fiche, channel)} :", f"Démarche : {label[procedure]}."]

    return [
        (
            "j'ai perdu mon téléphone, je fais comment ?",
            [label["perte_vol"], service.number, fiche.email_service_clientele],
        ),
        ("et en agence ?", [*yes_by("perte_vol", "agence"), fiche.agency_address]),
        ("code PUK ?", [label["code_puk"], fiche.contact_form]),
        ("vous êtes ouverts quand ?", [f"{hour_text(service.opens)} à {hour_text(service.closes)}"]),
        ("quel est votre adresse mail ?", [fiche.email_service_clientele, fiche.email_agence]),
        ("comment vous appeler depuis la France ?", [fiche.abroad_number]),
        ("où sont les tarifs ?", [fiche.tariff_guide]),
        ("je veux résilier ma ligne", [label["resiliation"]]),
        (
            "et par mail ?",
            [*yes_by("resiliation", "courrier"), fiche.email_service_clientele],
        ),
        (
            "je veux parler à un conseiller",
            [service.number, fiche.email_service_clientele, fiche.agency_address],
        ),
    ]


@dataclass
class Outcome:
    sender: str
    question: str
    latency: float | None = None  # seconds, None when never answered
    answer: str = ""
    right: bool = False
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    sent_at: float = 0.0  # time.perf_counter() of the first attempt


async def ask(
    session: aiohttp.ClientSession, url: str, sender: str, question: str, facts: list[str]
) -> Outcome:
    outcome = Outcome(sender, question)
    started = outcome.sent_at = time.perf_counter()
    for attempt in range(1 + RETRIES):
        outcome.attempts = attempt + 1
        try:
            async with session.post(url, json={"sender": sender, "message": question}) as response:
                if response.status == 200:
                    messages = await response.json()
                    if messages:
                        outcome.latency = time.perf_counter() - started
                        outcome.answer = "\n".join(plain(m.get("text", "")) for m in messages)  # as read
                        outcome.right = all(fact in outcome.answer for fact in facts)
                        return outcome
                    outcome.errors.append("empty answer")
                else:
                    outcome.errors.append(f"HTTP {response.status}")
        except (TimeoutError, aiohttp.ClientError) as error:
            outcome.errors.append(type(error).__name__)
        await asyncio.sleep(0.5 * (attempt + 1))
    return outcome


async def conversation(session, url: str, sender: str, turns: list[tuple[str, list[str]]]) -> list[Outcome]:
    return [await ask(session, url, sender, question, facts) for question, facts in turns]


async def run_load(
    url: str, conversations: int, messages: int, prefix: str
) -> tuple[list[Outcome], float, list[str]]:
    base = script()
    turns = [base[i % len(base)] for i in range(messages)]
    senders = [f"{prefix}-{i:03d}" for i in range(conversations)]
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    connector = aiohttp.TCPConnector(limit=conversations + 5)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        # warm-up (not measured): every instance loads what it loads lazily
        await asyncio.gather(
            *(ask(session, url, f"{prefix}-warmup-{i}", q, f) for i, (q, f) in enumerate(base[:4]))
        )
        started = time.perf_counter()
        results = await asyncio.gather(*(conversation(session, url, s, turns) for s in senders))
        elapsed = time.perf_counter() - started
    return [o for r in results for o in r], elapsed, senders


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


def summarise(
    name: str,
    outcomes: list[Outcome],
    elapsed: float,
    stored: Callable[[str], list[str]],
    senders: list[str],
    messages: int,
) -> dict:
    answered = [o for o in outcomes if o.latency is not None]
    latencies = [o.latency * 1000 for o in answered]
    base = script()
    expected = [base[i % len(base)][0] for i in range(messages)]
    missing_in_store = 0
    duplicated = 0
    for sender in senders:
        texts = stored(sender)
        collapsed = [t for i, t in enumerate(texts) if i == 0 or t != texts[i - 1]]
        duplicated += len(texts) - len(collapsed)
        # every expected message, in order, at least once
        position = 0
        for text in collapsed:
            if position < len(expected) and text == expected[position]:
                position += 1
        missing_in_store += len(expected) - position
    wrong = [o for o in answered if not o.right]
    return {
        "setup": name,
        "messages": len(outcomes),
        "elapsed_s": round(elapsed, 1),
        "throughput": round(len(answered) / elapsed, 2) if elapsed else 0,
        "p50_ms": round(percentile(latencies, 50)),
        "p95_ms": round(percentile(latencies, 95)),
        "p99_ms": round(percentile(latencies, 99)),
        "max_ms": round(max(latencies)) if latencies else None,
        "http_errors": sum(len(o.errors) for o in outcomes),
        "retried_messages": sum(1 for o in outcomes if o.attempts > 1),
        "unanswered": len(outcomes) - len(answered),
        "missing_in_store": missing_in_store,
        "duplicated_in_store": duplicated,
        "right_facts": len(answered) - len(wrong),
        "right_facts_pct": round(100 * (len(answered) - len(wrong)) / len(outcomes), 2) if outcomes else 0,
        "wrong_examples": [(o.question, o.answer[:160]) for o in wrong[:3]],
        "error_examples": sorted({e for o in outcomes for e in o.errors})[:5],
    }


# --- the two setups ---------------------------------------------------------------------------


def measure(
    setup: str, url: str, stored: Callable[[str], list[str]], conversations: int, messages: int, prefix: str
) -> dict:
    """The load against the REST channel at `url`; `stored(sender)`: the tracker store's user texts."""
    outcomes, elapsed, senders = asyncio.run(
        run_load(url + "/webhooks/rest/webhook", conversations, messages, prefix)
    )
    time.sleep(1)  # the last trackers saved
    return summarise(setup, outcomes, elapsed, stored, senders, messages)


SETUP_NAMES = {
    "prod": "production topology (2 Rasa + nginx, PostgreSQL, Redis)",
    "single": "single process (`make run`: 1 Rasa, SQLite)",
}


@contextmanager
def running_setup(setup: str, workdir: Path) -> Iterator[tuple[str, Callable[[str], list[str]]]]:
    """The setup started ("prod" or "single"): (base URL, the tracker store's user texts of a sender)."""
    started = time.perf_counter()
    if setup == "prod":
        redis_db = int(os.environ.get("CHAT_CAGOU_BENCH_REDIS_DB", "10"))
        with running_prod(workdir / "prod", redis_db=redis_db) as prod:
            print(f"prod topology up in {time.perf_counter() - started:.0f}s", flush=True)
            yield prod.url, prod.user_texts
    else:
        path = workdir / "single"
        path.mkdir(parents=True, exist_ok=True)
        with running_servers(path) as servers:
            print(f"single process up in {time.perf_counter() - started:.0f}s", flush=True)
            yield servers.rasa_url, servers.user_texts


def bench_setup(setup: str, conversations: int, messages: int, workdir: Path) -> dict:
    with running_setup(setup, workdir) as (url, stored):
        return measure(SETUP_NAMES[setup], url, stored, conversations, messages, f"load-{setup}")


def write_results(results: list[dict], conversations: int, messages: int) -> None:
    lines = [
        "# Load benchmark (bench/load.py)",
        "",
        f"{conversations} concurrent conversations × {messages} messages each (REST, loopback, asyncio + aiohttp "
        f"client; each customer sends the next message once the answer came; up to {RETRIES} retries per message). "
        f"Run on {datetime.now().strftime('%Y-%m-%d %H:%M')}, {os.cpu_count()} cores, "
        f"load average before the run {os.getloadavg()[0]:.1f}, Python {platform.python_version()}.",
        "",
        "| setup | messages | wall time | throughput | p50 | p95 | p99 | max | HTTP errors | retried | lost | duplicated | right facts |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lost = r["unanswered"] + r["missing_in_store"]
        lines.append(
            f"| {r['setup']} | {r['messages']} | {r['elapsed_s']} s | {r['throughput']} msg/s | {r['p50_ms']} ms | "
            f"{r['p95_ms']} ms | {r['p99_ms']} ms | {r['max_ms']} ms | {r['http_errors']} | {r['retried_messages']} | "
            f"{lost} | {r['duplicated_in_store']} | {r['right_facts']}/{r['messages']} ({r['right_facts_pct']} %) |"
        )
    lines += [
        "",
        "- *lost*: messages never answered after the retries, plus messages missing from the tracker store "
        "afterwards (PostgreSQL or SQLite, compared with what each customer sent, in order).",
        "- *right facts*: answers carrying every fact expected for the question (numbers, emails, addresses, "
        "hours, links, procedure and channel for follow-ups such as « et par mail ? »), taken from "
        "`fiche/mobilis_pro.yml`; a missing answer counts as wrong.",
        "- Latency: from the first attempt to the answer, retries included.",
        "- Both setups share the same 2 cores: the client, nginx, the action server and PostgreSQL compete with "
        "Rasa. Each Rasa instance is one Python process (one core at most), so two instances can use both cores "
        "where one process cannot.",
    ]
    for r in results:
        if r["wrong_examples"] or r["error_examples"]:
            lines.append(
                f"- {r['setup']}: errors {r['error_examples']}, wrong answers e.g. {r['wrong_examples']}"
            )
    RESULTS.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=50)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--setup", choices=["prod", "single", "both"], default="both")
    args = parser.parse_args()
    if not 1 <= args.conversations <= 200 or not 1 <= args.messages <= 100:
        parser.error("bounded load: 1-200 conversations, 1-100 messages")
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    results = []
    with tempfile.TemporaryDirectory(prefix="chat-cagou-load-") as tmp:
        workdir = Path(tmp)
        for setup in ("prod", "single") if args.setup == "both" else (args.setup,):
            results.append(bench_setup(setup, args.conversations, args.messages, workdir))
    write_results(results, args.conversations, args.messages)


if __name__ == "__main__":
    main()
