"""Scoring documents: sentences in, one score per category and the flags out, in batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from .inputs import Document
from .model import Model, explain
from .text import iter_sentences

BATCH_SENTENCES = 512


@dataclass(frozen=True, slots=True)
class SentenceScore:
    """A sentence of a document, its score in each category and the categories it is flagged in."""

    source: str
    doc_id: str | None
    index: int
    start: int
    end: int
    line: int
    col: int
    text: str
    scores: dict[str, float]
    flagged: tuple[str, ...]
    terms: dict[str, list[tuple[str, float]]] | None = None


def score_documents(
    documents: Iterable[Document],
    model: Model,
    thresholds: dict[str, float],
    *,
    with_terms: bool = False,
    batch_size: int = BATCH_SENTENCES,
) -> Iterator[SentenceScore]:
    """Score every sentence of every document, in document order, a batch of sentences at a time."""
    columns = [model.categories.index(c) for c in thresholds]
    batch: list[tuple[Document, int, object]] = []

    def flush() -> Iterator[SentenceScore]:
        proba = model.predict_proba([s.text for _, _, s in batch])
        for (doc, index, s), row in zip(batch, proba, strict=True):
            scores = {c: round(float(row[j]), 4) for c, j in zip(thresholds, columns, strict=True)}
            flagged = tuple(c for c, t in thresholds.items() if scores[c] >= t)
            terms = None
            if with_terms and flagged:
                terms = {c: ts for c, ts in explain(model, s.text).items() if c in flagged}
            yield SentenceScore(
                doc.source, doc.doc_id, index, s.start, s.end, s.line, s.col, s.text, scores, flagged, terms
            )
        batch.clear()

    for doc in documents:
        for index, sentence in enumerate(iter_sentences(doc.chunks)):
            batch.append((doc, index, sentence))
            if len(batch) >= batch_size:
                yield from flush()
    if batch:
        yield from flush()


def score_text(text: str, model: Model, thresholds: dict[str, float], source: str = "<text>") -> list[SentenceScore]:
    """Score one document held in memory."""
    return list(score_documents([Document(source, None, iter((text,)))], model, thresholds))


def with_neighbours(scores: Iterable[SentenceScore]) -> Iterator[tuple[str, SentenceScore, str]]:
    """Each sentence with the text of the sentences before and after it in the same document ("" at the edges)."""
    prev: SentenceScore | None = None
    before = ""
    for s in scores:
        if prev is not None:
            same = (prev.source, prev.doc_id) == (s.source, s.doc_id) and s.index == prev.index + 1
            yield before, prev, s.text if same else ""
            before = prev.text if same else ""
        prev = s
    if prev is not None:
        yield before, prev, ""
