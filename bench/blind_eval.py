"""Play the blind conversation set (tests/blind/) against a running assistant over REST.

The set was written from the fiche alone by someone who had not read data/: its utterances
never go into training data. Expectations are facts (numbers, emails, "non", the 1012),
matched case- and accent-insensitively, as whole words: "1000" does not match inside
"1000@opt.nc", "ouvert" not inside "réouverture". Negatives (messages that are not Mobilis
Pro questions) must get no fiche fact at all.

    python bench/blind_eval.py [--url http://localhost:5005] [--write]

Without --url, it starts its own action server and Rasa (the trained model) on free ports.
--write puts the figures into bench/results.md (section "Blind set") and bench/blind_results.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import unicodedata
import uuid
from collections import defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from actions.fiche import all_facts, load_fiche  # noqa: E402

BLIND = ROOT / "tests" / "blind"
RESULTS_MD = ROOT / "bench" / "results.md"
RESULTS_JSON = ROOT / "bench" / "blind_results.json"
SECTION_START = "<!-- blind-set:start -->"
SECTION_END = "<!-- blind-set:end -->"


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKD", text.lower().replace("’", "'").replace("\u00a0", " "))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", text)


def contains(reply: str, expected: str) -> bool:
    """`expected` in `reply` as whole words (a number is not part of an email address)."""
    pattern = r"(?<![0-9a-z])" + re.escape(normalise(expected).strip()) + r"(?![0-9a-z@])"
    return re.search(pattern, normalise(reply)) is not None


def check(reply: str, expect: dict | None) -> list[str]:
    """The expectations `reply` misses (empty when it passes)."""
    expect = expect or {}
    problems = [f"missing {e!r}" for e in expect.get("all", []) if not contains(reply, e)]
    if expect.get("any") and not any(contains(reply, e) for e in expect["any"]):
        problems.append(f"none of {expect['any']!r}")
    problems += [f"unwanted {e!r}" for e in expect.get("none", []) if contains(reply, e)]
    return problems


def fiche_facts() -> list[str]:
    """What a reply to an off-topic message must never carry: every contact fact of the fiche,
    its addresses and hours, and the words of its procedures."""
    fiche = load_fiche()
    facts = all_facts(fiche) + [
        fiche.email_service_clientele,
        "Gallieni",
        "BP 40001",
        "www.opt.nc",
        "optetvous",
    ]
    for phone in fiche.phones.values():
        if phone.opens:
            facts += [
                f"{phone.opens.hour}h{phone.opens.minute:02d}",
                f"{phone.closes.hour}h{phone.closes.minute:02d}",
            ]
    facts += [f"{fiche.restoration_days} jours", "suspendre la ligne", "suspension de la ligne", "carte SIM"]
    return sorted(set(facts))


def load_set():
    conversations = yaml.safe_load((BLIND / "conversations.yml").read_text(encoding="utf-8"))["conversations"]
    negatives = yaml.safe_load((BLIND / "negatives.yml").read_text(encoding="utf-8"))["messages"]
    return conversations, negatives


def say(url: str, sender: str, message: str) -> str:
    response = requests.post(
        f"{url}/webhooks/rest/webhook", json={"sender": sender, "message": message}, timeout=60
    )
    response.raise_for_status()
    return "\n".join(m.get("text", "") for m in response.json())


def play(url: str, conversation: dict) -> dict:
    sender = f"blind-{uuid.uuid4().hex[:12]}"
    failures = []
    for i, turn in enumerate(conversation["turns"]):
        reply = say(url, sender, turn["user"])
        problems = check(reply, turn.get("expect"))
        if problems:
            failures.append({"turn": i + 1, "user": turn["user"], "reply": reply, "problems": problems})
    return {
        "id": conversation["id"],
        "category": conversation["category"],
        "passed": not failures,
        "failures": failures,
    }


def play_negative(url: str, message: str, facts: Sequence[str]) -> dict:
    reply = say(url, f"blind-neg-{uuid.uuid4().hex[:12]}", message)
    found = [f for f in facts if contains(reply, f)]
    return {"message": message, "reply": reply, "facts": found}


def evaluate(url: str, workers: int = 2) -> dict:
    conversations, negatives = load_set()
    facts = fiche_facts()
    with ThreadPoolExecutor(workers) as pool:
        played = list(pool.map(lambda c: play(url, c), conversations))
        negative_results = list(pool.map(lambda m: play_negative(url, m, facts), negatives))
    by_category: dict[str, list[bool]] = defaultdict(list)
    for result in played:
        by_category[result["category"]].append(result["passed"])
    multi = [r["passed"] for r, c in zip(played, conversations, strict=False) if len(c["turns"]) > 1]
    return {
        "conversations": len(played),
        "multi_turn_conversations": len(multi),
        "passed": sum(r["passed"] for r in played),
        "pass_rate": sum(r["passed"] for r in played) / len(played),
        "categories": {
            k: {"n": len(v), "pass_rate": sum(v) / len(v)} for k, v in sorted(by_category.items())
        },
        "negatives": len(negative_results),
        "negatives_with_facts": sum(bool(r["facts"]) for r in negative_results),
        "failures": [r for r in played if not r["passed"]],
        "negative_failures": [r for r in negative_results if r["facts"]],
    }


def report(results: dict) -> str:
    lines = [
        SECTION_START,
        "## Blind set (`make eval`)",
        "",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}: {results['conversations']} conversations "
        f"({results['multi_turn_conversations']} multi-turn) written from the fiche alone (tests/blind/), "
        "played over REST against the trained assistant; facts checked, not wording.",
        "",
        "| category | conversations | passed |",
        "| --- | --- | --- |",
    ]
    for name, figures in results["categories"].items():
        lines.append(f"| {name} | {figures['n']} | {figures['pass_rate']:.1%} |")
    lines += [
        f"| **all** | {results['conversations']} | **{results['pass_rate']:.1%}** |",
        "",
        f"Negatives (not Mobilis Pro questions): {results['negatives']} messages, "
        f"**{results['negatives_with_facts']}** replies with a fiche fact.",
        SECTION_END,
    ]
    return "\n".join(lines)


def write(results: dict) -> None:
    section = report(results)
    text = RESULTS_MD.read_text(encoding="utf-8") if RESULTS_MD.exists() else "# Chat Cagou benchmark\n"
    if SECTION_START in text:
        before, rest = text.split(SECTION_START, 1)
        text = before + section + rest.split(SECTION_END, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + section + "\n"
    RESULTS_MD.write_text(text, encoding="utf-8")
    summary = {k: v for k, v in results.items() if not k.endswith("failures")}
    RESULTS_JSON.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")


def print_failures(results: dict) -> None:
    for failure in results["failures"]:
        for turn in failure["failures"]:
            print(f"FAIL {failure['id']} turn {turn['turn']}: {turn['user']!r} {turn['problems']}")
            print("   " + turn["reply"].replace("\n", "\n   "))
    for negative in results["negative_failures"]:
        print(f"FACT ON NEGATIVE {negative['message']!r}: {negative['facts']}")
        print("   " + negative["reply"].replace("\n", "\n   "))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a running assistant (default: start one)")
    parser.add_argument(
        "--write", action="store_true", help="write bench/results.md and bench/blind_results.json"
    )
    parser.add_argument("--quiet", action="store_true", help="do not list the failures")
    args = parser.parse_args()
    if args.url:
        results = evaluate(args.url.rstrip("/"))
    else:
        from tests.servers import running_servers

        with tempfile.TemporaryDirectory() as workdir, running_servers(Path(workdir)) as servers:
            results = evaluate(servers.rasa_url)
    if not args.quiet:
        print_failures(results)
    print(report(results))
    if args.write:
        write(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
