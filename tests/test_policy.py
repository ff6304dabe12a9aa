from __future__ import annotations

from pathlib import Path

import pytest

from moderation.errors import PolicyError
from moderation.policy import default_policy_text, load_policy, parse_policy


def test_default_policy_has_the_four_categories_with_rules() -> None:
    policy = load_policy()
    assert policy.ids == ("threat", "incitement", "hate", "harassment")
    assert all(c.rule and c.title for c in policy.categories)
    assert all(c.threshold is None for c in policy.categories)  # "auto": the model's own thresholds


def test_a_copied_and_edited_policy_loads(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    head, threat = default_policy_text().split("[categories.threat]")
    path.write_text(head + "[categories.threat]" + threat.replace('threshold = "auto"', "threshold = 0.7", 1))
    policy = load_policy(path)
    assert policy.category("threat").threshold == 0.7
    assert policy.category("hate").threshold is None


@pytest.mark.parametrize(
    ("toml", "line", "words"),
    [
        ('name = "x"\ncolour = "red"\n[categories.a]\ntitle = "A"\nrule = "r"\n', 2, "unknown key 'colour'"),
        ('[categories.a]\ntitle = "A"\nrule = "r"\nthreshhold = 0.5\n', 4, "unknown key 'threshhold'"),
        ('[categories.a]\ntitle = "A"\nrule = "r"\nthreshold = 1.5\n', 4, "threshold must be a number in 0-1"),
        ('[categories.a]\ntitle = "A"\nrule = "r"\nthreshold = "high"\n', 4, "threshold must be"),
        ('[categories.a]\ntitle = "A"\n', 1, "needs a non-empty string 'rule'"),
        ('[categories.a]\ntitle = "A"\nrule = "r"\ntarget_precision = -1\n', 4, "target_precision"),
        ('name = "x"\n', None, "no [categories"),
        ('[categories.a\ntitle = "A"\n', None, "invalid TOML"),
        ('[categories."Bad Id"]\ntitle = "A"\nrule = "r"\n', 1, "lower case"),
    ],
)
def test_bad_policies_name_the_line_and_key(toml: str, line: int | None, words: str) -> None:
    with pytest.raises(PolicyError) as err:
        parse_policy(toml, "p.toml")
    assert words in str(err.value)
    if line is not None:
        assert str(err.value).startswith(f"p.toml:{line}:")


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="not found"):
        load_policy(tmp_path / "nope.toml")


def test_unknown_category_lookup() -> None:
    with pytest.raises(PolicyError, match="no category 'spam'"):
        load_policy().category("spam")
