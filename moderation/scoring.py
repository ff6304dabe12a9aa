"""Scoring documents: sentences in, one score per category, the flags and the review band out, in batches.

The model's scores are turned into outcomes by the policy: a category is flagged at or above its threshold and
marked for review between its review threshold and its threshold; an exception phrase removes both, an
always-flag phrase forces the flag; text in a language the model does not support gets neither.
"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import ModelError
from .inputs import Document
from .language import UNSURE, Detected, LanguageGuard
from .model import Model, explain, load_model
from .policy import Policy, review_thresholds
from .text import Sentence, iter_sentences, normalize

BATCH_SENTENCES = 512
_WORD = re.compile(r"\w+")


@dataclass(frozen=True, slots=True)
class SentenceScore:
    """A sentence of a document, its score in each category and what the policy makes of them."""

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
    review: tuple[str, ...] = ()  # categories in the review band
    suppressed: dict[str, str] = field(default_factory=dict)  # category -> the exception that removed its flag
    forced: dict[str, str] = field(default_factory=dict)  # category -> the always-flag term that set it
    lang: str | None = None
    unsupported: bool = False  # in a language the policy says the model cannot judge


@dataclass(frozen=True)
class Rules:
    """What turns scores into outcomes: thresholds, the policy's phrases, and the language guard."""

    policy: Policy
    flag: dict[str, float]
    review: dict[str, float]
    guard: LanguageGuard | None

    @classmethod
    def of(cls, policy: Policy, model: Model, threshold: float | None = None, guard: bool = True) -> Rules:
        flag = model.thresholds(policy, threshold)
        lang_guard = LanguageGuard(policy.languages) if guard and policy.languages else None
        return cls(policy, flag, review_thresholds(policy, flag), lang_guard)

    def outcome(self, text: str, scores: dict[str, float], unsupported: bool = False):
        """(flagged, review, suppressed, forced, unsupported) for one scored sentence."""
        if unsupported:
            # No flag on a language the model cannot judge, but a high score still goes to a person.
            flagged, review = [], [c for c, t in self.flag.items() if scores[c] >= t]
        else:
            flagged = [c for c, t in self.flag.items() if scores[c] >= t]
            review = [c for c, t in self.review.items() if t <= scores[c] < self.flag[c]]
        suppressed, forced = {}, {}
        if self.policy.has_terms:
            excepted, forced = self.policy.matches(tuple(_WORD.findall(normalize(text))))
            for c, phrase in excepted.items():
                if c in forced:
                    continue  # an always-flag term wins over an exception
                if c in flagged:
                    suppressed[c] = phrase
                flagged = [x for x in flagged if x != c]
                review = [x for x in review if x != c]
            for c in forced:
                if c not in flagged:
                    flagged.append(c)
                review = [x for x in review if x != c]
            order = {c: i for i, c in enumerate(self.flag)}
            flagged.sort(key=order.__getitem__)
        return tuple(flagged), tuple(review), suppressed, forced, unsupported


def score_documents(
    documents: Iterable[Document],
    model: Model,
    rules: Rules,
    *,
    with_terms: bool = False,
    batch_size: int = BATCH_SENTENCES,
    jobs: int = 1,
) -> Iterator[SentenceScore]:
    """Score every sentence of every document, in document order."""
    for batch in score_batches(documents, model, rules, with_terms=with_terms, batch_size=batch_size, jobs=jobs):
        yield from batch


def score_batches(
    documents: Iterable[Document],
    model: Model,
    rules: Rules,
    *,
    with_terms: bool = False,
    batch_size: int = BATCH_SENTENCES,
    jobs: int = 1,
) -> Iterator[list[SentenceScore]]:
    """Score every sentence of every document, in document order, a batch of sentences at a time.

    With `jobs` other than 1, the model runs in that many worker processes (-1: one per core), each loading the
    model once; reading, splitting and the policy's decisions stay here, so the order of the results is the same.
    """
    batches = _batches(documents, rules, batch_size)
    if jobs == 1:
        scored = ((b, model.predict_proba([s.text for _, _, s, _ in b])) for b in batches)
    else:
        scored = _parallel(batches, model, jobs)
    cats = list(rules.flag)
    columns = [model.categories.index(c) for c in cats]
    # Below every category's review threshold (most sentences) the outcome is nothing, whatever the language; only
    # a policy's always-flag terms could change that.
    lowest = np.array([min(rules.flag[c], rules.review[c]) for c in cats])
    has_terms = rules.policy.has_terms
    for batch, proba in scored:
        out = []
        picked = proba[:, columns]
        hot = (picked >= lowest).any(axis=1).tolist()
        for (doc, index, s, doc_lang), row, is_hot in zip(batch, picked.tolist(), hot, strict=True):
            lang, unsupported = rules.guard.sentence(s.text, doc_lang) if rules.guard else (None, False)
            raw = dict(zip(cats, row, strict=True))  # decisions on the raw scores
            if is_hot or has_terms:
                flagged, review, suppressed, forced, unsupported = rules.outcome(s.text, raw, unsupported)
            else:
                flagged, review, suppressed, forced = (), (), {}, {}
            scores = {c: round(v, 4) for c, v in raw.items()}
            terms = None
            if with_terms and flagged:
                terms = {c: ts for c, ts in explain(model, s.text).items() if c in flagged}
                for c, phrase in forced.items():
                    terms[c] = [(f"always: {phrase}", 0.0), *terms.get(c, [])]
            out.append(SentenceScore(doc.source, doc.doc_id, index, s.start, s.end, s.line, s.col, s.text, scores,
                                     flagged, terms, review, suppressed, forced, lang, unsupported))  # fmt: skip
        yield out


Batch = list[tuple[Document, int, Sentence, Detected]]


def _batches(documents: Iterable[Document], rules: Rules, batch_size: int) -> Iterator[Batch]:
    """Sentences in batches; a batch is cut early when its input has nothing more to read right now, so a pipe from
    a growing log is scored as it grows."""
    batch: Batch = []
    for doc in documents:
        chunks, doc_lang = doc.chunks, UNSURE
        if rules.guard is not None:
            first = next(chunks, "")
            doc_lang = rules.guard.document(first)
            chunks = itertools.chain((first,), chunks)
        for index, sentence in enumerate(iter_sentences(chunks)):
            batch.append((doc, index, sentence, doc_lang))
            if len(batch) >= batch_size or (doc.idle is not None and doc.idle()):
                yield batch
                batch = []
        if batch and doc.idle is not None and doc.idle():
            yield batch
            batch = []
    if batch:
        yield batch


def _parallel(batches: Iterator[Batch], model: Model, jobs: int) -> Iterator[tuple[Batch, np.ndarray]]:
    import joblib

    if model.path is None:
        raise ModelError("--jobs needs a model stored on disk (workers load it from there)")
    in_flight: collections.deque[Batch] = collections.deque()

    def tasks():
        for b in batches:
            in_flight.append(b)
            yield joblib.delayed(_worker_proba)(str(model.path), [s.text for _, _, s, _ in b])

    # Results come back in the order the tasks were made, so each pairs with the oldest batch still in flight.
    for proba in joblib.Parallel(n_jobs=jobs, return_as="generator", pre_dispatch="2*n_jobs")(tasks()):
        yield in_flight.popleft(), proba


_WORKER_MODELS: dict[str, Model] = {}


def _worker_proba(path: str, texts: list[str]) -> np.ndarray:
    """In a worker process: the model's probabilities, the model loaded (and its hashes checked) once per process."""
    model = _WORKER_MODELS.get(path)
    if model is None:
        model = _WORKER_MODELS[path] = load_model(Path(path))
    return model.predict_proba(texts)


def score_text(text: str, model: Model, rules: Rules, source: str = "<text>") -> list[SentenceScore]:
    """Score one document held in memory."""
    return list(score_documents([Document(source, None, iter((text,)))], model, rules))


class Neighbours:
    """Pairs each sentence with the text of the sentences before and after it in the same document ("" at the
    edges), as sentences arrive: a sentence is released once the next one is known, the last one by `close`."""

    def __init__(self) -> None:
        self.last: SentenceScore | None = None
        self.before = ""

    def push(self, s: SentenceScore) -> list[tuple[str, SentenceScore, str]]:
        out = []
        if self.last is not None:
            same = (self.last.source, self.last.doc_id) == (s.source, s.doc_id) and s.index == self.last.index + 1
            out.append((self.before, self.last, s.text if same else ""))
            self.before = self.last.text if same else ""
        self.last = s
        return out

    def close(self) -> list[tuple[str, SentenceScore, str]]:
        out = [] if self.last is None else [(self.before, self.last, "")]
        self.last = None
        return out


def with_neighbours(scores: Iterable[SentenceScore]) -> Iterator[tuple[str, SentenceScore, str]]:
    """Each sentence with the text of the sentences before and after it in the same document."""
    pairing = Neighbours()
    for s in scores:
        yield from pairing.push(s)
    yield from pairing.close()
