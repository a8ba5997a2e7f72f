#!/usr/bin/env python3
"""Check that every `docs/...` and `tests/...` path cited in the repository exists.

Scans the files tracked by git (code comments, YAML, Makefile, scripts, Markdown) and
prints `file:line: cited path does not exist: X` for each cited path that is neither a
file nor a folder of the repository; exits 1 if there is any, else prints one OK line.
Part of `make lint`. Usage: python scripts/check_cited_paths.py
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A path starting with docs/ or tests/, not inside a longer path or a URL ("../tests/x",
# "https://example.org/docs/x" are not ours).
CITED = re.compile(r"(?<![A-Za-z0-9_./-])(?:docs|tests)/[A-Za-z0-9_./*-]*")
# Punctuation that ends a sentence rather than a path: "see docs/console.md." or "(tests/).".
TRAILING = ".,:;"

# Paths that exist only at run time, so they are cited but never tracked.
GENERATED = (
    "tests/artifacts",  # screenshots of the browser tests (ignored by git, kept by CI)
)

# Files whose content is not ours to check.
SKIPPED_PREFIXES = (
    "tests/blind/",  # the blind set: written from the fiche alone, left as it was written
    "web/node_modules/",  # third-party packages
)
SKIPPED_NAMES = ("package-lock.json",)
SKIPPED_SUFFIXES = (".lock",)


def is_scanned(path: Path) -> bool:
    """Whether a repository-relative file is checked at all (binary files are skipped later)."""
    name = path.as_posix()
    return not (
        name.startswith(SKIPPED_PREFIXES)
        or path.name in SKIPPED_NAMES
        or path.name.endswith(SKIPPED_SUFFIXES)
    )


def is_generated(cited: str) -> bool:
    return any(cited == g or cited.startswith(g + "/") for g in GENERATED)


def read_text(path: Path) -> str | None:
    """The file's text, or None for a binary, unreadable or missing file."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if b"\0" in data[:8192]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def cited_paths(line: str) -> list[str]:
    """The docs/ and tests/ paths cited on one line, trailing punctuation removed."""
    return [match.rstrip(TRAILING) for match in CITED.findall(line)]


def missing_paths(root: Path, files: Iterable[Path]) -> list[str]:
    """`file:line: cited path does not exist: X` for each cited path missing under `root`.

    `files` are relative to `root`. Globs (`tests/test_*.py`) and generated paths are
    accepted as they are.
    """
    problems: list[str] = []
    for file in files:
        if not is_scanned(file):
            continue
        text = read_text(root / file)
        if text is None:
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            for cited in cited_paths(line):
                if "*" in cited or is_generated(cited):
                    continue
                if not (root / cited).exists():
                    problems.append(f"{file.as_posix()}:{lineno}: cited path does not exist: {cited}")
    return problems


def tracked_files(root: Path) -> list[Path]:
    listing = subprocess.run(
        ["git", "ls-files", "-z"],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return [Path(name) for name in listing.split("\0") if name]


def main() -> int:
    files = tracked_files(ROOT)
    problems = missing_paths(ROOT, files)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check_cited_paths: {len(problems)} cited path(s) do not exist", file=sys.stderr)
        return 1
    print(f"check_cited_paths: OK, every docs/ and tests/ path cited in {len(files)} files exists")
    return 0


if __name__ == "__main__":
    sys.exit(main())
