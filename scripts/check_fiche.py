#!/usr/bin/env python3
"""Run the fact tests on a version of the fiche instead of the seed (issue 16).

    python scripts/check_fiche.py 3              # version 3 of the console's database
    python scripts/check_fiche.py path/to/fiche.yml
    make check-fiche VERSION=3

The database: FICHE_DB_URL, else CONSOLE_DB_URL, else the tracker store of CONSOLE_ENDPOINTS
(default endpoints.yml), as the console finds it. The version is written to a temporary file;
the actions load it (CHAT_CAGOU_FICHE) and the tests compare every fact an answer gives with
that version (CHAT_CAGOU_CHECK_VERSION=1, tests/conftest.py), not with the document of
26/07/2021; tests/test_fiche.py still checks version 1 against the document. Exit code: pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The tests whose expectations are read from the fiche itself (those with literal values of
# the document, such as tests/test_actions.py::test_key_answers, do not apply to a new version).
FACT_TESTS = (
    "tests/test_actions.py::test_procedure_without_channel_lists_every_channel",
    "tests/test_actions.py::test_procedure_with_channel",
    "tests/test_actions.py::test_info_answers_carry_fiche_facts",
    "tests/test_markdown.py",
    "tests/test_fiche.py",
)


def database_url() -> str:
    from sqlalchemy.engine.url import make_url

    from console.config import tracker_store_url

    url = os.environ.get("FICHE_DB_URL") or os.environ.get("CONSOLE_DB_URL")
    if url:
        return url
    endpoints = Path(os.environ.get("CONSOLE_ENDPOINTS") or ROOT / "endpoints.yml")
    return make_url(tracker_store_url(endpoints)).render_as_string(hide_password=False)


def version_content(number: int) -> str:
    import sqlalchemy as sa

    from actions import fiche_versions

    engine = sa.create_engine(database_url())
    try:
        with engine.connect() as conn:
            version = fiche_versions.get(conn, number) if fiche_versions.has_tables(conn) else None
    finally:
        engine.dispose()
    if version is None:
        raise SystemExit(
            f"check_fiche: no version {number} in {engine.url.render_as_string()} "
            "(the console creates version 1 at its first start)"
        )
    return version.content


def run(fiche_file: Path, tests: tuple[str, ...] = FACT_TESTS, extra: list[str] | None = None) -> int:
    env = {**os.environ, "CHAT_CAGOU_FICHE": str(fiche_file), "CHAT_CAGOU_CHECK_VERSION": "1"}
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests, *(extra or [])]
    return subprocess.run(command, cwd=ROOT, env=env).returncode


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    target = argv[0]
    if target.isdigit():
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"fiche-version-{target}.yml"
            path.write_text(version_content(int(target)), encoding="utf-8")
            return run(path)
    path = Path(target)
    if not path.is_file():
        print(f"check_fiche: {target} is neither a version number nor a file", file=sys.stderr)
        return 2
    return run(path.resolve())


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
