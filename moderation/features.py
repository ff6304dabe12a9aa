"""The n-gram features the model is built on: counts times IDF, scaled by the sentence's number of n-grams.

scikit-learn's TfidfVectorizer L2-normalises each row, which needs every sentence's distinct n-grams and their
counts. Dividing by the square root of the number of known n-grams instead scored the same on the held-out split
(BENCHMARKS.md), and it makes a sentence's score a plain sum over its n-grams, which `compiled.py` computes for a
whole batch without grouping n-grams by sentence.
"""

from __future__ import annotations

import re
from functools import partial

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.utils.validation import check_is_fitted

from .text import WORD_TOKEN

#: What stands for the skipped word in the name of a word pair ("should … shot"): never part of a token.
SKIPPED = "…"
_TOKEN = re.compile(WORD_TOKEN)


def word_ngrams_and_pairs(text: str, n: int, skips: int) -> list[str]:
    """Word n-grams of length 1 to `n`, and pairs of words with one to `skips` words between them ("be … shot")."""
    tokens = _TOKEN.findall(text)
    grams = [" ".join(tokens[i : i + k]) for k in range(1, n + 1) for i in range(len(tokens) - k + 1)]
    for gap in range(1, skips + 1):
        grams += [f"{a} {' '.join([SKIPPED] * gap)} {b}" for a, b in zip(tokens, tokens[gap + 1 :], strict=False)]
    return grams


class ScaledNgrams(TransformerMixin, BaseEstimator):
    """N-gram counts x smoothed IDF / sqrt(number of known n-grams in the text), as a sparse matrix.

    `analyzer` is "word" (tokens of `WORD_TOKEN`) or "char_wb" (character n-grams inside white-space separated
    words, padded with a space), as in CountVectorizer; texts are taken as given (no lower-casing). With `skips`,
    word features include pairs of words with up to that many words between them.
    """

    def __init__(
        self, analyzer: str = "word", ngram_range: tuple[int, int] = (1, 1), min_df: int = 2, skips: int = 0
    ) -> None:
        self.analyzer = analyzer
        self.ngram_range = ngram_range
        self.min_df = min_df
        self.skips = skips

    def __setstate__(self, state: dict) -> None:
        # Models pickled before `skips` existed had none.
        super().__setstate__({"skips": 0, **state})

    def fit(self, texts, y=None) -> ScaledNgrams:
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts, y=None) -> sparse.csr_matrix:
        analyzer = self.analyzer
        if self.skips:
            if self.analyzer != "word" or self.ngram_range[0] != 1:
                raise ValueError("word pairs (skips) need the word analyzer and n-grams from length 1")
            # The n-grams CountVectorizer's word analyser builds (no stop words, no lower-casing), and the pairs.
            analyzer = partial(word_ngrams_and_pairs, n=self.ngram_range[1], skips=self.skips)
        self.vectorizer_ = CountVectorizer(
            analyzer=analyzer, ngram_range=(1, 1) if self.skips else self.ngram_range, min_df=self.min_df,
            lowercase=False, token_pattern=WORD_TOKEN if analyzer == "word" else None, dtype=np.float64,
        )  # fmt: skip
        counts = self.vectorizer_.fit_transform(texts).tocsr()
        document_frequency = np.bincount(counts.indices, minlength=counts.shape[1])
        self.idf_ = np.log((1 + counts.shape[0]) / (1 + document_frequency)) + 1.0  # TfidfTransformer's smooth IDF
        return self._scale(counts)

    def transform(self, texts) -> sparse.csr_matrix:
        check_is_fitted(self, "idf_")
        return self._scale(self.vectorizer_.transform(texts).tocsr())

    @property
    def vocabulary_(self) -> dict[str, int]:
        return self.vectorizer_.vocabulary_

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        return self.vectorizer_.get_feature_names_out()

    def _scale(self, counts: sparse.csr_matrix) -> sparse.csr_matrix:
        known = np.asarray(counts.sum(axis=1)).ravel()
        per_text = 1.0 / np.sqrt(np.maximum(known, 1.0))
        return (sparse.diags(per_text) @ counts @ sparse.diags(self.idf_)).tocsr()
