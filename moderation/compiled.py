"""The fitted pipeline compiled to arrays, for scoring fast and loading without unpickling.

scikit-learn's vectorisers build every word and character n-gram of every sentence as a Python string and look
each up in a dict. Here the same features are found for a whole batch at once with numpy: character n-grams as
rolling hashes of code points looked up in sorted arrays, word bigrams as pairs of unigram ids. TF-IDF weighting,
L2 normalisation and the logistic regressions are then a few array operations. The scores equal the pipeline's
(`tests/test_compiled.py` checks it), and the arrays load from an .npz file without pickle, so scoring runs no code
from the model file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .text import normalize_many

_MASK = (1 << 64) - 1
_PRIME = 0x100000001B3  # FNV-1a's 64-bit prime: odd, so multiplying mixes every bit of the code points
_TOKEN = re.compile(r"(?u)\b\w+\b")  # the word vectoriser's token_pattern
_SEPARATOR = 0  # code point between sentences in a batch: no n-gram crosses it


class NotCompilable(Exception):
    """The pipeline is not the shape this module knows how to compile (another feature set or classifier)."""


def ngram_hash(gram: str) -> int:
    h = 0
    for ch in gram:
        h = (h * _PRIME + ord(ch)) & _MASK
    return h


@dataclass(frozen=True)
class CompiledModel:
    unigrams: dict[str, int]  # token -> unigram rank
    unigram_feature: np.ndarray  # rank -> word feature index
    bigram_codes: np.ndarray  # sorted rank_a * n_ranks + rank_b
    bigram_feature: np.ndarray
    word_idf: np.ndarray
    char_keys: tuple[np.ndarray, ...]  # per n-gram length: sorted hashes
    char_feature: tuple[np.ndarray, ...]
    char_idf: np.ndarray
    char_min_n: int
    word_coef: np.ndarray  # (word features, categories)
    char_coef: np.ndarray
    intercept: np.ndarray

    # --- building ------------------------------------------------------------------------------------------------

    @classmethod
    def from_pipeline(cls, pipeline) -> CompiledModel:
        """Compile a fitted `moderation.model.build_pipeline()`; NotCompilable if it has another shape."""
        try:
            features = dict(pipeline.named_steps["features"].transformer_list)
            word, char = features["word"], features["char"]
            estimators = pipeline.named_steps["classify"].estimators_
        except (KeyError, AttributeError) as e:
            raise NotCompilable(f"unexpected pipeline: {e}") from None
        _expect(word, analyzer="word", ngram_range=(1, 2), token_pattern=_TOKEN.pattern)
        _expect(char, analyzer="char_wb")
        for v in (word, char):
            _expect(v, lowercase=False, binary=False, norm="l2", use_idf=True, sublinear_tf=True, preprocessor=None,
                    tokenizer=None, stop_words=None)  # fmt: skip
        n_word = len(word.vocabulary_)
        coef = np.vstack([e.coef_.ravel() for e in estimators]).T  # (features, categories)
        intercept = np.array([float(e.intercept_[0]) for e in estimators])
        if pipeline.named_steps["classify"].label_binarizer_.y_type_ == "binary":
            raise NotCompilable("single-category pipelines are scored by scikit-learn")

        unigram_items = sorted((t, i) for t, i in word.vocabulary_.items() if " " not in t)
        unigrams = {t: rank for rank, (t, _) in enumerate(unigram_items)}
        n_ranks = len(unigrams)
        codes, bigram_feature = [], []
        for gram, i in word.vocabulary_.items():
            if " " in gram:
                a, b = gram.split(" ")
                codes.append(unigrams[a] * n_ranks + unigrams[b])  # both are in the vocabulary: same min_df
                bigram_feature.append(i)
        order = np.argsort(codes)
        min_n, max_n = char.ngram_range
        keys: list[list[int]] = [[] for _ in range(min_n, max_n + 1)]
        feats: list[list[int]] = [[] for _ in range(min_n, max_n + 1)]
        for gram, i in char.vocabulary_.items():
            keys[len(gram) - min_n].append(ngram_hash(gram))
            feats[len(gram) - min_n].append(i)
        char_keys, char_feature = [], []
        for k, f in zip(keys, feats, strict=True):
            o = np.argsort(np.array(k, dtype=np.uint64), kind="stable")
            char_keys.append(np.array(k, dtype=np.uint64)[o])
            char_feature.append(np.array(f, dtype=np.int64)[o])
        for k in char_keys:
            if len(np.unique(k)) != len(k):
                raise NotCompilable("two character n-grams share a hash")
        return cls(
            unigrams=unigrams,
            unigram_feature=np.array([i for _, i in unigram_items], dtype=np.int64),
            bigram_codes=np.array(codes, dtype=np.int64)[order],
            bigram_feature=np.array(bigram_feature, dtype=np.int64)[order],
            word_idf=word.idf_.astype(np.float64),
            char_keys=tuple(char_keys),
            char_feature=tuple(char_feature),
            char_idf=char.idf_.astype(np.float64),
            char_min_n=min_n,
            word_coef=coef[:n_word],
            char_coef=coef[n_word:],
            intercept=intercept,
        )

    # --- storage -------------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        arrays = {
            "unigram_tokens": np.array(list(self.unigrams), dtype=str),
            "unigram_feature": self.unigram_feature,
            "bigram_codes": self.bigram_codes,
            "bigram_feature": self.bigram_feature,
            "word_idf": self.word_idf,
            "char_idf": self.char_idf,
            "char_min_n": np.array(self.char_min_n),
            "word_coef": self.word_coef,
            "char_coef": self.char_coef,
            "intercept": self.intercept,
        }
        for n, (k, f) in enumerate(zip(self.char_keys, self.char_feature, strict=True)):
            arrays[f"char_keys_{n}"], arrays[f"char_feature_{n}"] = k, f
        with path.open("wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> CompiledModel:
        with np.load(path, allow_pickle=False) as z:
            lengths = sum(1 for name in z.files if name.startswith("char_keys_"))
            tokens = z["unigram_tokens"].tolist()
            return cls(
                unigrams={t: i for i, t in enumerate(tokens)},
                unigram_feature=z["unigram_feature"],
                bigram_codes=z["bigram_codes"],
                bigram_feature=z["bigram_feature"],
                word_idf=z["word_idf"],
                char_keys=tuple(z[f"char_keys_{n}"] for n in range(lengths)),
                char_feature=tuple(z[f"char_feature_{n}"] for n in range(lengths)),
                char_idf=z["char_idf"],
                char_min_n=int(z["char_min_n"]),
                word_coef=z["word_coef"],
                char_coef=z["char_coef"],
                intercept=z["intercept"],
            )

    # --- scoring -------------------------------------------------------------------------------------------------

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """One probability per text and category, as the compiled pipeline would give."""
        return self.predict_proba_normalized(normalize_many(texts))

    def predict_proba_normalized(self, docs: list[str]) -> np.ndarray:
        logits = np.tile(self.intercept, (len(docs), 1))
        logits += self._word_scores(docs)
        logits += self._char_scores(docs)
        return 1.0 / (1.0 + np.exp(-logits))

    def _word_scores(self, docs: list[str]) -> np.ndarray:
        token_lists = [_TOKEN.findall(d) for d in docs]
        lengths = np.fromiter(map(len, token_lists), dtype=np.int64, count=len(docs))
        get = self.unigrams.get
        ranks = np.fromiter((get(t, -1) for tokens in token_lists for t in tokens), dtype=np.int64,
                            count=int(lengths.sum()))  # fmt: skip
        doc_of = np.repeat(np.arange(len(docs)), lengths)
        known = ranks >= 0
        doc_parts, feat_parts = [doc_of[known]], [self.unigram_feature[ranks[known]]]
        if len(ranks) > 1 and len(self.bigram_codes):
            same_doc = doc_of[1:] == doc_of[:-1]
            both = same_doc & known[1:] & known[:-1]
            codes = ranks[:-1][both] * len(self.unigram_feature) + ranks[1:][both]
            found, where = _lookup(self.bigram_codes, codes)
            doc_parts.append(doc_of[1:][both][found])
            feat_parts.append(self.bigram_feature[where[found]])
        return _tfidf_scores(len(docs), doc_parts, feat_parts, self.word_idf, self.word_coef)

    def _char_scores(self, docs: list[str]) -> np.ndarray:
        # " doc " per sentence, separated by code point 0: the char_wb windows are exactly those inside one padded
        # sentence with no space inside them (only at their ends), so no window crosses a word or a sentence.
        joined = "\0".join(f" {d} " for d in docs)
        codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
        doc_at = np.repeat(np.arange(len(docs)), [len(d) + 3 for d in docs])[: len(codes)]
        space = codes == 32
        stop = codes == _SEPARATOR
        doc_parts, feat_parts = [], []
        h = np.zeros(len(codes), dtype=np.uint64)
        interior_space = np.zeros(len(codes), dtype=bool)
        bad = np.zeros(len(codes), dtype=bool)
        prime = np.uint64(_PRIME)
        with np.errstate(over="ignore"):
            for n in range(1, self.char_min_n + len(self.char_keys)):
                m = len(codes) - n + 1
                if m <= 0:
                    break
                # Extend windows of length n-1 starting at i by the code point at i+n-1.
                h = h[:m] * prime + codes[n - 1 : n - 1 + m]
                bad = bad[:m] | stop[n - 1 : n - 1 + m]
                # The character that was last in the shorter window is now inside this one.
                interior_space = interior_space[:m] | (space[n - 2 : n - 2 + m] if n >= 3 else False)
                if n < self.char_min_n:
                    continue
                valid = ~bad & ~interior_space
                if n == 2:
                    valid &= ~(space[:m] & space[1 : 1 + m])  # "  " only arises from an empty sentence
                found, where = _lookup(self.char_keys[n - self.char_min_n], h[valid])
                doc_parts.append(doc_at[:m][valid][found])
                feat_parts.append(self.char_feature[n - self.char_min_n][where[found]])
        return _tfidf_scores(len(docs), doc_parts, feat_parts, self.char_idf, self.char_coef)


def _lookup(sorted_keys: np.ndarray, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each key, whether it is in `sorted_keys` and where."""
    if not len(sorted_keys) or not len(keys):
        return np.zeros(len(keys), dtype=bool), np.zeros(len(keys), dtype=np.int64)
    where = np.searchsorted(sorted_keys, keys)
    where[where == len(sorted_keys)] = 0
    return sorted_keys[where] == keys, where


def _tfidf_scores(n_docs: int, doc_parts, feat_parts, idf: np.ndarray, coef: np.ndarray) -> np.ndarray:
    """Sum over each document's features of sublinear-tf x idf, L2-normalised, times the coefficients."""
    from scipy.sparse import csr_matrix

    docs = np.concatenate(doc_parts) if doc_parts else np.zeros(0, dtype=np.int64)
    feats = np.concatenate(feat_parts) if feat_parts else np.zeros(0, dtype=np.int64)
    if not len(docs):
        return np.zeros((n_docs, coef.shape[1]))
    # Building CSR from (row, column) pairs and summing duplicates sorts within each row only: the rows are short.
    x = csr_matrix((np.ones(len(docs)), (docs, feats)), shape=(n_docs, len(idf)))
    x.sum_duplicates()
    x.data = (1.0 + np.log(x.data)) * idf[x.indices]
    rows = np.repeat(np.arange(n_docs), np.diff(x.indptr))
    x.data /= np.sqrt(np.bincount(rows, weights=x.data * x.data, minlength=n_docs))[rows]
    return np.asarray(x @ coef)


def _expect(vectorizer, **params) -> None:
    for name, want in params.items():
        got = getattr(vectorizer, name, None)
        if got != want:
            raise NotCompilable(f"{type(vectorizer).__name__}.{name} is {got!r}, expected {want!r}")
