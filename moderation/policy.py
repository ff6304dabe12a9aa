"""The policy: which categories exist, the rule each enforces, and when a score counts as a flag."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .errors import PolicyError

AUTO = "auto"
_ID = re.compile(r"[a-z][a-z0-9_]{0,39}")
_TOP_KEYS = {"name", "categories"}
_CATEGORY_KEYS = {"title", "rule", "threshold", "target_precision"}


@dataclass(frozen=True, slots=True)
class Category:
    """One rule of the policy. `threshold` None means "auto": the model's own threshold from training."""

    id: str
    title: str
    rule: str
    threshold: float | None = None
    target_precision: float | None = None


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    categories: tuple[Category, ...]
    source: str

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(c.id for c in self.categories)

    def category(self, category_id: str) -> Category:
        for c in self.categories:
            if c.id == category_id:
                return c
        raise PolicyError(f"{self.source}: no category {category_id!r} (known: {', '.join(self.ids)})")


def default_policy_text() -> str:
    """The TOML of the policy that ships with the package."""
    return resources.files("moderation").joinpath("policies/default.toml").read_text(encoding="utf-8")


def load_policy(path: Path | None = None) -> Policy:
    """Read a policy file, or the default policy when `path` is None."""
    if path is None:
        return parse_policy(default_policy_text(), "<default policy>")
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise PolicyError(f"{path}: policy file not found") from None
    except IsADirectoryError:
        raise PolicyError(f"{path}: is a directory, expected a policy TOML file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise PolicyError(f"{path}: cannot read policy: {e}") from None
    return parse_policy(raw, str(path))


def parse_policy(raw: str, source: str) -> Policy:
    """Parse and validate policy TOML; every problem names the file, the line and the key."""
    try:
        doc = tomllib.loads(raw)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{source}: invalid TOML: {e}") from None

    def fail(message: str, key: str, table: str | None = None) -> PolicyError:
        return PolicyError(f"{source}:{_line_of(raw, key, table)}: {message}")

    for key in doc:
        if key not in _TOP_KEYS:
            raise fail(f"unknown key {key!r} (expected one of: {', '.join(sorted(_TOP_KEYS))})", key)
    name = doc.get("name", Path(source).stem)
    if not isinstance(name, str):
        raise fail("'name' must be a string", "name")
    tables = doc.get("categories")
    if not isinstance(tables, dict) or not tables:
        raise PolicyError(f"{source}: the policy defines no [categories.<id>] table")
    categories = []
    for cid, table in tables.items():
        where = f"categories.{cid}"
        if not _ID.fullmatch(cid):
            raise fail(f"category id {cid!r} must be lower case letters, digits or '_'", cid)
        if not isinstance(table, dict):
            raise fail(f"[{where}] must be a table", cid)
        for key in table:
            if key not in _CATEGORY_KEYS:
                expected = ", ".join(sorted(_CATEGORY_KEYS))
                raise fail(f"[{where}] unknown key {key!r} (expected one of: {expected})", key, where)
        for key in ("title", "rule"):
            if not isinstance(table.get(key), str) or not table[key].strip():
                raise fail(f"[{where}] needs a non-empty string {key!r}", key if key in table else cid, where)
        threshold = table.get("threshold", AUTO)
        if threshold == AUTO:
            threshold = None
        elif not _is_probability(threshold):
            raise fail(f'[{where}] threshold must be a number in 0-1 or "auto", not {threshold!r}', "threshold", where)
        target = table.get("target_precision")
        if target is not None and not _is_probability(target):
            raise fail(f"[{where}] target_precision must be a number in 0-1, not {target!r}", "target_precision", where)
        categories.append(Category(cid, table["title"].strip(), " ".join(table["rule"].split()), threshold, target))
    return Policy(name, tuple(categories), source)


def _is_probability(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0


def _line_of(raw: str, key: str, table: str | None) -> int:
    """The 1-based line where `key` is set (inside `[table]` when given), for error messages; 1 if not found."""
    lines = raw.splitlines()
    start = 0
    if table is not None:
        header = re.compile(r"\s*\[\s*" + r"\s*\.\s*".join(map(re.escape, table.split("."))) + r"\s*\]")
        start = next((i + 1 for i, line in enumerate(lines) if header.match(line)), 0)
    pattern = re.compile(r"\s*(?:\[\s*(?:categories\s*\.\s*)?)?" + re.escape(key) + r"\s*[=\].]")
    for i in range(start, len(lines)):
        if pattern.match(lines[i]):
            return i + 1
    return start or 1
