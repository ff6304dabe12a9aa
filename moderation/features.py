"""The n-gram features the model is built on: counts times IDF, scaled by the sentence's number of n-grams.

scikit-learn's TfidfVectorizer L2-normalises each row, which needs every sentence's distinct n-grams and their
counts. Dividing by the square root of the number of known n-grams instead scored the same on the held-out split
(BENCHMARKS.md), and it makes a sentence's score a plain sum over its n-grams, which `compiled.py` computes for a
whole batch without grouping n-grams by sentence.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import CountVectorizer
from sklearn.utils.validation import check_is_fitted

from .text import WORD_TOKEN


class ScaledNgrams(TransformerMixin, BaseEstimator):
    """N-gram counts x smoothed IDF / sqrt(number of known n-grams in the text), as a sparse matrix.

    `analyzer` is "word" (tokens of `WORD_TOKEN`) or "char_wb" (character n-grams inside white-space separated
    words, padded with a space), as in CountVectorizer; texts are taken as given (no lower-casing).
    """

    def __init__(self, analyzer: str = "word", ngram_range: tuple[int, int] = (1, 1), min_df: int = 2) -> None:
        self.analyzer = analyzer
        self.ngram_range = ngram_range
        self.min_df = min_df

    def fit(self, texts, y=None) -> ScaledNgrams:
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts, y=None) -> sparse.csr_matrix:
        self.vectorizer_ = CountVectorizer(
            analyzer=self.analyzer, ngram_range=self.ngram_range, min_df=self.min_df, lowercase=False,
            token_pattern=WORD_TOKEN if self.analyzer == "word" else None, dtype=np.float64,
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
