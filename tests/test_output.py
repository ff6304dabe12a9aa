from __future__ import annotations

import csv
import io
import json
from collections import Counter

from hypothesis import example, given, settings
from hypothesis import strategies as st

from moderation.output import RECORD_KEYS, LineRenderer, json_line, make_writer, printable, record
from moderation.scoring import SentenceScore

CATS = ("threat", "incitement", "hate", "harassment")


def sample(text: str = "I will kill you", flagged: tuple[str, ...] = ("threat",), doc_id: str | None = None):
    scores = {"threat": 0.91, "incitement": 0.1, "hate": 0.0, "harassment": 0.2}
    return SentenceScore("in.txt", doc_id, 0, 0, len(text), 1, 1, text, scores, flagged)


def render(fmt: str, items: list[SentenceScore]) -> str:
    out = io.StringIO()
    writer = make_writer(fmt, out, CATS)
    for s in items:
        writer.write(s)
    writer.close()
    return out.getvalue()


def test_jsonl_has_exactly_the_documented_keys() -> None:
    lines = render("jsonl", [sample(), sample("fine", ())]).splitlines()
    records = [json.loads(line) for line in lines]
    assert [tuple(r) for r in records] == [RECORD_KEYS, RECORD_KEYS]
    assert records[0]["flagged"] == ["threat"] and records[1]["flagged"] == []
    assert records[0]["doc_id"] is None and records[0]["scores"]["threat"] == 0.91


def test_json_is_one_array_even_when_empty() -> None:
    assert json.loads(render("json", [])) == []
    assert [r["text"] for r in json.loads(render("json", [sample(), sample("b", ())]))] == ["I will kill you", "b"]


def test_csv_has_a_score_column_per_category() -> None:
    rows = list(csv.DictReader(io.StringIO(render("csv", [sample('say "x", ok', ("threat", "hate"))]))))
    assert rows[0]["text"] == 'say "x", ok'
    assert rows[0]["score_threat"] == "0.91" and rows[0]["flagged"] == "threat;hate"


def test_table_shows_only_flagged_sentences_and_a_summary() -> None:
    out = render("table", [sample(doc_id="p7"), sample("fine", (), doc_id="p7")])
    assert "in.txt#p7:1:1" in out and "I will kill you" in out and "fine" not in out
    assert "1 flag(s) in 2 sentences of 1 document(s): threat 1, incitement 0" in out


def test_table_cannot_be_driven_by_markup_or_escape_sequences() -> None:
    hostile = "[bold red]boom[/] \x1b[31mred\x1b[0m \u202eevil \x07"
    out = render("table", [sample(hostile)])
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert "[bold red]boom[/]" in out  # shown literally, not interpreted
    assert "\\x1b[31mred" in out and "\\u202eevil" in out


def test_printable_keeps_ordinary_unicode() -> None:
    assert printable("café 🚀 שלום") == "café 🚀 שלום"
    assert printable("a\tb\r\nc") == "a b  c"
    assert printable("a\x00b\x7fc\x9b") == "a\\x00b\\x7fc\\x9b"


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(),
    source=st.text(min_size=1),
    doc_id=st.none() | st.text(),
    lang=st.none() | st.text(max_size=3),
    scores=st.lists(st.floats(0, 1), min_size=4, max_size=4),
    flagged=st.lists(st.sampled_from(CATS), unique=True),
    suppressed=st.dictionaries(st.sampled_from(CATS), st.text(max_size=10)),
)
def test_a_json_line_is_what_the_json_module_would_write(text, source, doc_id, lang, scores, flagged, suppressed):
    s = SentenceScore(source, doc_id, 3, 0, len(text), 1, 1, text, dict(zip(CATS, scores, strict=True)),
                      tuple(flagged), None, tuple(flagged[:1]), suppressed, {}, lang)  # fmt: skip
    assert json_line(s) == json.dumps(record(s), ensure_ascii=False)


@settings(max_examples=100, deadline=None)
@given(text=st.text(), index=st.integers(0, 10**6), doc_id=st.none() | st.text(), flagged=st.booleans())
@example(text="100% sure, %d %s %%", index=7, doc_id="50%", flagged=True)  # the template's own conversion marks
def test_lines_rendered_in_a_worker_are_the_writers_own(text: str, index: int, doc_id, flagged: bool) -> None:
    s = SentenceScore("a,b.txt", doc_id, index, 0, len(text), 1, 1, text, {c: 0.5 for c in CATS},
                      ("hate",) if flagged else ())  # fmt: skip
    for fmt in LineRenderer.formats:
        direct = render(fmt, [s, s])
        rendered = LineRenderer(fmt, CATS, only_flagged=False)(0, [s, s])
        out = io.StringIO()
        writer = make_writer(fmt, out, CATS)
        writer.write_rendered(rendered, base=index - s.index)  # the piece's first sentence is sentence `index`
        writer.close()
        assert out.getvalue() == direct
        assert writer.flags == Counter({"hate": 2} if flagged else {})
