"""`make eval`: the blind conversation set (tests/blind/) against a running assistant over REST.

What is played and how replies are checked: harness/blind_set.py (tests/test_blind.py uses it
too, as a regression guard).

    python bench/blind_eval.py [--url http://localhost:5005] [--write]

Without --url, it starts its own action server and Rasa (the trained model) on free ports, its
clock set to a Wednesday at 10h in Nouméa (harness/blind_set.py PLAYED_AT); with --url, the
running assistant's own clock.
--write puts the figures into bench/results.md (section "Blind set") and bench/blind_results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.blind_set import PLAYED_AT, evaluate, print_failures  # noqa: E402
from harness.clock import TestClock  # noqa: E402
from harness.servers import running_servers  # noqa: E402

RESULTS_MD = ROOT / "bench" / "results.md"
RESULTS_JSON = ROOT / "bench" / "blind_results.json"
SECTION_START = "<!-- blind-set:start -->"
SECTION_END = "<!-- blind-set:end -->"


def report(results: dict[str, Any]) -> str:
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


def write(results: dict[str, Any]) -> None:
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
        with tempfile.TemporaryDirectory() as workdir:
            clock = TestClock(Path(workdir) / "clock")
            clock.set(PLAYED_AT)  # answers that depend on the hour, the same at every run
            with running_servers(Path(workdir), extra_env=clock.env) as servers:
                results = evaluate(servers.rasa_url)
    if not args.quiet:
        print_failures(results)
    print(report(results))
    if args.write:
        write(results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
