from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from moderation import inputs
from moderation.cli import app
from moderation.inputs import ReadOptions, _jsonl_documents, _lines, _text_chunks


class _Pipe:
    """A pipe's reads as they arrive: each call returns the next piece, then b"" (the end)."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def read1(self, n: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""

    read = read1


TEXT = "Hello there. I will kill you tonight.\n"


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5])
def test_a_pipes_first_reads_may_split_or_hold_only_the_byte_order_mark(codec: str, cut: int) -> None:
    data = TEXT.encode(codec)
    # The first read stops `cut` bytes in: inside the mark, at its end, or just after it; the rest comes later.
    pieces = [data[:cut], data[cut : cut + 1], data[cut + 1 :]]
    warnings: list[str] = []
    assert "".join(_text_chunks(_Pipe(pieces), "-", ReadOptions(strict=True), warnings.append)) == TEXT
    assert warnings == []


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-32"])
@pytest.mark.parametrize("cut", [1, 2, 3, 4, 5])
def test_json_lines_from_a_pipe_whose_first_read_splits_the_mark(codec: str, cut: int) -> None:
    data = '{"id": 1, "text": "I will kill you tonight"}\n{"id": 2, "text": "bye"}\n'.encode(codec)
    pipe = _Pipe([data[:cut], data[cut : cut + 1], data[cut + 1 :]])
    posts = list(_jsonl_documents(pipe, "-", ReadOptions(strict=True)))
    assert [(d.doc_id, "".join(d.chunks)) for d in posts] == [("1", "I will kill you tonight"), ("2", "bye")]


def test_text_that_merely_starts_like_no_mark_is_not_held_back() -> None:
    # A live input's first line must be scored before more arrives: only a mark's first bytes make it wait.
    pipe = _Pipe([b"hi\n", b"more\n"])
    chunks = _text_chunks(pipe, "-", ReadOptions(), None)
    assert next(chunks) == "hi\n" and pipe.pieces == [b"more\n"]


def _reference_lines(text: str) -> list[tuple[int, str]]:
    lines = re.split(r"\r\n|\r|\n", text)
    if lines[-1] == "":
        lines.pop()  # a final line break ends the last line; it does not start another
    return list(enumerate(lines, 1))


@given(
    st.lists(st.sampled_from(["ab", "c", " ", "\r", "\n", "\r\n", "\f", "\u2028", "é"]), max_size=40),
    st.lists(st.integers(1, 7), min_size=1, max_size=40),
)
def test_lines_are_numbered_as_an_editor_counts_them_however_the_text_is_cut(parts: list[str], cuts: list[int]) -> None:
    text = "".join(parts)
    chunks, at = [], 0
    for n in cuts * (len(text) // len(cuts) + 1):
        if at >= len(text):
            break
        chunks.append(text[at : at + n])
        at += n
    assert list(_lines(iter(chunks), too_long=lambda n: pytest.fail(f"line {n} too long"))) == _reference_lines(text)


def test_a_line_over_the_limit_is_reported_and_skipped_without_being_held(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "MAX_RECORD_CHARS", 10)
    told: list[int] = []
    chunks = ["short\nthis line ", "goes on and on ", "and on\r", "\nok\n", "exactly10c\r", "eleven char\nend"]
    assert list(_lines(iter(chunks), told.append)) == [(1, "short"), (3, "ok"), (4, "exactly10c"), (6, "end")]
    assert told == [2, 5]  # a line too long within one chunk as well as across several


def test_score_refuses_or_skips_an_overlong_line_as_it_does_a_record(
    models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "MAX_RECORD_CHARS", 30)
    log = tmp_path / "log.txt"
    log.write_text("I will kill you tonight.\n" + "x" * 31 + "\nsee you at the meeting\n")
    args = ["score", str(log), "--input-format", "lines", "-f", "jsonl", "--model", str(models_dir)]
    refused = CliRunner().invoke(app, args)
    assert refused.exit_code == 2 and refused.stderr.endswith("log.txt:2: line longer than 10 million characters\n")
    skipped = CliRunner().invoke(app, [*args, "--on-error", "skip"])
    assert skipped.exit_code == 1 and [json.loads(r)["doc_id"] for r in skipped.stdout.splitlines()] == ["1", "3"]
