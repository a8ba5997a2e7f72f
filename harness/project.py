"""Where the project's files and commands are, and the environment its processes run in."""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MODEL = ROOT / "models" / "chat-cagou.tar.gz"
VENV_BIN = Path(sys.executable).parent
RASA = VENV_BIN / "rasa"
NO_MODEL = "no trained model: run `make train` (make test does it)"


def quiet_env(**extra: str) -> dict[str, str]:
    """This process's environment for Rasa and its tools: no telemetry, no TensorFlow chatter."""
    return {**os.environ, "RASA_TELEMETRY_ENABLED": "false", "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def require_model() -> None:
    """Raises FileNotFoundError when the trained model is missing."""
    if not MODEL.exists():
        raise FileNotFoundError(f"{MODEL}: {NO_MODEL}")
