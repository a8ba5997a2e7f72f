"""What the console needs from the Rasa project: the domain's intents and entities, and the
training examples already in data/ (so that an export never repeats one)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from console.masking import fold

ANNOTATION = re.compile(r"\[([^\]]+)\](?:\([^)]*\)|\{[^}]*\}|\[[^\]]*\])")


def _yaml_files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in (".yml", ".yaml"))
    return [path] if path.is_file() else []


def _names(items: Iterable[Any] | None) -> list[str]:
    """Domain lists hold names or one-key mappings ({name: {use_entities: ...}})."""
    out = []
    for item in items or []:
        out.append(next(iter(item)) if isinstance(item, dict) else str(item))
    return out


@lru_cache(maxsize=8)
def _domain(path: str, mtime: float) -> tuple[tuple[str, ...], tuple[str, ...]]:
    intents: list[str] = []
    entities: list[str] = []
    for file in _yaml_files(Path(path)):
        content = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        intents += [n for n in _names(content.get("intents")) if n not in intents]
        entities += [n for n in _names(content.get("entities")) if n not in entities]
    return tuple(intents), tuple(entities)


def _mtime(path: Path) -> float:
    files = _yaml_files(path)
    return max((f.stat().st_mtime for f in files), default=0.0)


def domain_intents(path: Path) -> list[str]:
    return list(_domain(str(path), _mtime(path))[0])


def domain_entities(path: Path) -> list[str]:
    return list(_domain(str(path), _mtime(path))[1])


def plain_text(example: str) -> str:
    """'par [mail](canal)' -> 'par mail'."""
    return ANNOTATION.sub(lambda m: m.group(1), example)


def _example_lines(data_path: Path) -> Iterator[tuple[str, str]]:
    """(intent, example) of every NLU example in data/."""
    for file in _yaml_files(data_path):
        try:
            content = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        for block in content.get("nlu") or [] if isinstance(content, dict) else []:
            if not isinstance(block, dict) or "intent" not in block:
                continue
            for line in str(block.get("examples") or "").splitlines():
                line = line.strip()
                if line.startswith("- "):
                    yield block["intent"], line[2:]


def training_examples(data_path: Path) -> dict[str, set[str]]:
    """Folded plain text of every NLU example in data/ -> the intents it is labelled with."""
    found: dict[str, set[str]] = {}
    for intent, example in _example_lines(data_path):
        found.setdefault(fold(plain_text(example)), set()).add(intent)
    return found


ROUND = re.compile(r"\[([^\]]+)\]\(([^)]+)\)")
CURLY = re.compile(r"\[([^\]]+)\]\{([^}]+)\}")


def training_entity_texts(data_path: Path) -> set[tuple[str, str]]:
    """(entity, folded text) of every entity annotation in data/: 'par [mail](canal)' gives
    ('canal', 'mail'). An entity the model predicts on another text is not trusted enough to
    be written into training data unreviewed."""
    found: set[tuple[str, str]] = set()
    for _, example in _example_lines(data_path):
        for text, entity in ROUND.findall(example):
            found.add((entity.split(":")[0].strip(), fold(text)))
        for text, spec in CURLY.findall(example):
            try:
                found.add((json.loads("{" + spec + "}")["entity"], fold(text)))
            except (ValueError, KeyError, TypeError):
                continue
    return found
