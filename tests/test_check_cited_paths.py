"""scripts/check_cited_paths.py: cited docs and tests paths must exist (no git, no servers)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "check_cited_paths.py"
# The folder names are kept apart from the file names so that this file, which the script
# also checks, cites no made-up path itself.
DOCS, TESTS = "docs", "tests"


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_cited_paths", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


check = load_script()


def write(root: Path, name: str, text: str) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return Path(name)


def test_missing_path_is_reported_with_file_and_line(tmp_path: Path) -> None:
    write(tmp_path, f"{DOCS}/real.md", "# real\n")
    cited = write(tmp_path, "app.py", f"# see {DOCS}/real.md.\n# and ({DOCS}/nowhere.md).\n")
    expected = f"app.py:2: cited path does not exist: {DOCS}/nowhere.md"
    assert check.missing_paths(tmp_path, [cited]) == [expected]


def test_folders_globs_generated_paths_and_urls_are_accepted(tmp_path: Path) -> None:
    write(tmp_path, f"{TESTS}/test_a.py", "")
    text = (
        f"{TESTS}/ and `{TESTS}/test_a.py`, {TESTS}/test_*.py, screenshots in {TESTS}/artifacts/x.png;\n"
        f"https://example.org/{DOCS}/elsewhere.md and ../{TESTS}/outside.py are not ours\n"
    )
    cited = write(tmp_path, "README.md", text)
    assert check.missing_paths(tmp_path, [cited]) == []


def test_blind_set_lock_files_and_binary_files_are_skipped(tmp_path: Path) -> None:
    missing = f"see {DOCS}/nowhere.md"
    files = [
        write(tmp_path, f"{TESTS}/blind/conversations.yml", missing),
        write(tmp_path, "requirements.lock", missing),
        write(tmp_path, "web/package-lock.json", missing),
    ]
    (tmp_path / "shot.png").write_bytes(b"\x89PNG\0" + missing.encode())
    files.append(Path("shot.png"))
    assert check.missing_paths(tmp_path, files) == []
