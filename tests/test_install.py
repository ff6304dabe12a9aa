"""The installed console script, run as a user would: a real process, from another directory."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = shutil.which("moderation", path=str(Path(sys.executable).parent))
pytestmark = pytest.mark.skipif(SCRIPT is None, reason="the moderation console script is not installed")


def run(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], cwd=cwd, input=stdin, capture_output=True, text=True, timeout=120)


def test_score_with_the_bundled_model_from_another_directory(tmp_path: Path) -> None:
    doc = tmp_path / "post.txt"
    doc.write_text("I will kill you tonight.\n\nKill the process and restart it.\n")
    result = run("score", "post.txt", "--format", "jsonl", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["flagged"] for r in records] == [["threat"], []]
    assert result.stderr == ""


def test_nothing_flagged_exits_0_and_errors_exit_2(tmp_path: Path) -> None:
    calm = run("score", "-", "--format", "jsonl", cwd=tmp_path, stdin="The meeting moved to Thursday.\n")
    assert calm.returncode == 0 and json.loads(calm.stdout)["flagged"] == []
    missing = run("score", "nope.txt", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stdout == "" and missing.stderr == "moderation: error: nope.txt: no such file\n"


def test_python_dash_m_works(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "moderation", "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "score" in result.stdout


def test_version_names_the_package_and_the_default_model(tmp_path: Path) -> None:
    from moderation import __version__
    from moderation.registry import bundled_models_dir, current_name

    result = run("--version", cwd=tmp_path)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == f"moderation {__version__} (default model {current_name(bundled_models_dir())})\n"
