"""The blind set (tests/blind/, written from the fiche alone) against the real assistant over
REST, as `make eval` plays it; `make eval` writes the exact figures to bench/results.md.

A regression guard, a little below what the model measured when it landed (97.9 %, every
category >= 92.3 %, no fiche fact on any of the 179 negatives, bench/results.md), with one
negative of margin for training noise. DIET's training is not bit-identical across CPUs: the
same data and seeds give 96.6 % on an AMD machine, and 96.2 % with DIET's 30 epochs of
intents only (bench/nlu_results.md, "Training time"), both with one negative given a fact.
The target of issue 10 is 97 %, every category 90 % and no fact on any negative: raise these
bounds as the model allows, never lower them to let a change pass. Played at a fixed instant
(harness/blind_set.py PLAYED_AT): the answers depend on what is open "now"."""

from __future__ import annotations

import pytest

from harness.blind_set import PLAYED_AT, evaluate, print_failures

pytestmark = [pytest.mark.servers, pytest.mark.model]

PASS_RATE = 0.96
CATEGORY_PASS_RATE = 0.88
MAX_NEGATIVES_WITH_FACTS = 1


def test_blind_set(servers):
    servers.clock.set(PLAYED_AT)  # the same answers whatever the hour CI runs at
    try:
        results = evaluate(servers.rasa_url)
    finally:
        servers.clock.clear()
    print_failures(results)
    assert results["negatives_with_facts"] <= MAX_NEGATIVES_WITH_FACTS
    assert results["pass_rate"] >= PASS_RATE, results["categories"]
    weak = {k: v for k, v in results["categories"].items() if v["pass_rate"] < CATEGORY_PASS_RATE}
    assert not weak, weak
