"""Rasa's own checks on the training data, and the conversation tests on the trained model."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from harness.project import MODEL, RASA, ROOT
from tests.conftest import require_model

ENV = {
    "RASA_TELEMETRY_ENABLED": "false",
    "TF_CPP_MIN_LOG_LEVEL": "2",
    "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
}


def rasa(*args, timeout=600):
    return subprocess.run(
        [str(RASA), *args], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout
    )


def test_rasa_data_validate_fail_on_warning():
    proc = rasa("data", "validate", "--fail-on-warning")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


@pytest.mark.model
def test_conversation_stories(tmp_path):
    require_model()
    proc = rasa(
        "test",
        "core",
        "--model",
        str(MODEL),
        "--stories",
        "tests/test_stories.yml",
        "--fail-on-prediction-errors",
        "--out",
        str(tmp_path),
        "--no-plot",
    )
    failed = tmp_path / "failed_test_stories.yml"
    details = failed.read_text() if failed.exists() else ""
    assert proc.returncode == 0, details[-6000:] + proc.stdout[-3000:] + proc.stderr[-3000:]


FACT = re.compile(r"@|https?://|www\.|\b\d{4}\b|\+687|\b\d{1,2}h\d{0,2}\b")


def test_fixed_texts_carry_no_fact():
    """Facts come from the fiche through actions; a fixed text (domain response, small talk,
    out of scope, the scope question) must not restate one."""
    from actions import answers

    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    texts = [v.get("text", "") for variants in (domain.get("responses") or {}).values() for v in variants]
    texts += list(answers.SMALL_TALK.values())
    texts += [answers.OUT_OF_SCOPE, answers.SCOPE_QUESTION, answers.ASK_QUESTION, answers.NOTHING_ELSE]
    assert len(texts) >= 8
    for text in texts:
        assert not FACT.search(text), text


def test_no_fact_outside_the_fiche_in_the_code():
    """No phone number, email, hour or link is written in actions/ (they read the fiche)."""
    for path in (ROOT / "actions").glob("*.py"):
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            strings = re.findall(r"\"[^\"]*\"|'[^']*'", code)
            for literal in strings:
                assert not re.search(
                    r"@\w|https?://\w|www\.|\+687|\b1[0-9]{3}\b(?!\))", literal
                ) or literal in ('"1000"', '"1016"', '"1012"'), f"{path.name}:{lineno}: {literal}"
