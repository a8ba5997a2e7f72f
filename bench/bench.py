"""`make bench`: held-out NLU scores, training time, model size, cold start, memory and REST latency.

Prints the figures and writes them to bench/results.md. Run on a quiet machine: figures
are measured, not asserted (the tests assert quality, never speed)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.answers import figures as answer_figures  # noqa: E402
from bench.machine import machine  # noqa: E402
from harness.nlu_holdout import load_agent, load_holdout, predict, score  # noqa: E402
from harness.project import MODEL, RASA, quiet_env  # noqa: E402
from harness.servers import running_servers  # noqa: E402

RESULTS = ROOT / "bench" / "results.md"
NOTES_START, NOTES_END = "<!-- notes:start -->", "<!-- notes:end -->"
LATENCY_MESSAGES = 200
LONG_CONVERSATION = 200
QUESTIONS = [
    "code PUK ?",
    "je veux résilier",
    "et par mail ?",
    "vous êtes ouverts ?",
    "j'ai perdu mon tel",
    "quel est votre mail ?",
    "comment suivre ma conso ?",
    "je veux parler à un conseiller",
    "bonjour",
    "merci",
    "changer de forfait",
    "appeler depuis la France",
]


def train_time() -> float:
    """A full training from scratch into a temporary directory (Rasa's cache disabled)."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        subprocess.run(
            [
                str(RASA),
                "train",
                "--out",
                out,
                "--force",
                "--num-threads",
                "2",
            ],
            cwd=ROOT,
            env=quiet_env(),
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - start


def percentile(values, pct):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(pct / 100 * (len(ordered) - 1)))]


def rest_latency():
    with tempfile.TemporaryDirectory() as workdir, running_servers(Path(workdir)) as servers:
        for question in QUESTIONS:  # warm-up
            servers.say("warmup", question)
        latencies = []
        for i in range(LATENCY_MESSAGES):
            start = time.perf_counter()
            replies = servers.say(f"bench-{i // 10}", QUESTIONS[i % len(QUESTIONS)])
            latencies.append((time.perf_counter() - start) * 1000)
            assert replies, "every message is answered"
        return latencies


def rss_mb(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


def serving() -> dict[str, float]:
    """Cold start (Rasa process start to its first REST answer), resident memory of Rasa and of
    the action server while serving, and one customer's latency at turns 1-20 against turns
    181-200 of one long conversation (the input guard's per-customer limit raised for it)."""
    from harness.servers import Servers

    with tempfile.TemporaryDirectory() as workdir:
        servers = Servers(Path(workdir), extra_env={"CHAT_CAGOU_RATE_LIMIT": "100000/60"})
        try:
            servers.start_actions()
            started = time.perf_counter()
            servers.start_rasa()
            assert servers.say("cold-start", "code PUK ?"), "the first message is answered"
            cold_start = time.perf_counter() - started
            by_turn = []
            for turn in range(LONG_CONVERSATION):
                asked = time.perf_counter()
                assert servers.say("long", QUESTIONS[turn % len(QUESTIONS)])
                by_turn.append((time.perf_counter() - asked) * 1000)
            assert servers.rasa is not None and servers.actions is not None
            rasa_mb, actions_mb = rss_mb(servers.rasa.pid), rss_mb(servers.actions.pid)
        finally:
            servers.stop()
    return {
        "cold_start_s": cold_start,
        "rasa_rss_mb": rasa_mb,
        "actions_rss_mb": actions_mb,
        "first_turns_p50_ms": percentile(by_turn[:20], 50),
        "late_turns_p50_ms": percentile(by_turn[-20:], 50),
    }


def main() -> None:
    examples = load_holdout()
    agent = load_agent()
    predicted = predict(agent, [e.text for e in examples])
    overall = score(examples, predicted)
    robust_idx = [i for i, e in enumerate(examples) if e.robustness]
    robust = score([examples[i] for i in robust_idx], [predicted[i] for i in robust_idx])
    del agent

    seconds = train_time() if "--skip-train" not in sys.argv else float("nan")
    size_mb = MODEL.stat().st_size / 2**20
    latencies = rest_latency()
    served = serving()
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    readable = answer_figures(ROOT)

    # The notes written by hand between the markers (before/after comparisons) stay as they were.
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
    notes = (
        NOTES_START + old.split(NOTES_START, 1)[1].split(NOTES_END, 1)[0] + NOTES_END
        if NOTES_START in old and NOTES_END in old
        else f"{NOTES_START}\n{NOTES_END}"
    )
    lines = [
        "# Chat Cagou benchmark",
        "",
        f"Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC on {machine()}.",
        "",
        "| figure | value |",
        "| --- | --- |",
        f"| held-out intent accuracy ({overall.count} utterances) | {overall.accuracy:.3f} |",
        f"| held-out intent macro-F1 | {overall.macro_f1:.3f} |",
        f"| robustness subset accuracy / macro-F1 ({robust.count} utterances) | {robust.accuracy:.3f} / {robust.macro_f1:.3f} |",
        f"| training time (full, from scratch) | {seconds:.0f} s |",
        f"| model size | {size_mb:.1f} MB |",
        f"| REST reply latency p50 / p95 ({LATENCY_MESSAGES} messages, one user at a time) | {p50:.0f} ms / {p95:.0f} ms |",
        f"| cold start (Rasa process start to its first REST answer) | {served['cold_start_s']:.1f} s |",
        f"| resident memory while serving: Rasa / action server | {served['rasa_rss_mb']:.0f} MB / "
        f"{served['actions_rss_mb']:.0f} MB |",
        f"| one long conversation, p50 of turns 1-20 / turns 181-200 | {served['first_turns_p50_ms']:.0f} ms / "
        f"{served['late_turns_p50_ms']:.0f} ms |",
        f"| answers ({readable['answers']}, bench/answers.py): median length / median first line | "
        f"{readable['median_chars']:.0f} / {readable['median_first_line_chars']:.0f} characters |",
        f"| answers whose first line holds the key fact | {readable['first_line_key_fact']:.0%} |",
        "",
        notes,
        "",
        "How this pipeline compares with Rasa's default pipeline and a scikit-learn baseline "
        "(cross-validation, per-intent F1, plots): [nlu_results.md](nlu_results.md) (`make bench-nlu`).",
        "",
        "Held-out errors:",
        "",
        *[f"- {text!r}: expected `{exp}`, got `{got}`" for text, exp, got in overall.errors],
        "",
    ]
    # The blind set's section (bench/blind_eval.py) stays as it was.
    if "<!-- blind-set:start -->" in old:
        lines += ["<!-- blind-set:start -->" + old.split("<!-- blind-set:start -->", 1)[1]]
    RESULTS.write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))
    (ROOT / "bench" / "results.json").write_text(
        json.dumps(
            {
                "accuracy": overall.accuracy,
                "macro_f1": overall.macro_f1,
                "robust_macro_f1": robust.macro_f1,
                "train_seconds": seconds,
                "model_mb": size_mb,
                "latency_p50_ms": p50,
                "latency_p95_ms": p95,
                **served,
                "answer_median_chars": readable["median_chars"],
                "answer_first_line_key_fact": readable["first_line_key_fact"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
