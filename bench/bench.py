"""`make bench`: held-out NLU scores, training time, model size and REST latency.

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
LATENCY_MESSAGES = 200
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
    p50, p95 = percentile(latencies, 50), percentile(latencies, 95)
    readable = answer_figures(ROOT)

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
        f"| answers ({readable['answers']}, bench/answers.py): median length / median first line | "
        f"{readable['median_chars']:.0f} / {readable['median_first_line_chars']:.0f} characters |",
        f"| answers whose first line holds the key fact | {readable['first_line_key_fact']:.0%} |",
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
    old = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else ""
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
                "answer_median_chars": readable["median_chars"],
                "answer_first_line_key_fact": readable["first_line_key_fact"],
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
