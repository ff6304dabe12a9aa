"""The fitted pipeline compiled to arrays, for scoring fast and loading without unpickling.

scikit-learn's vectorisers build every word and character n-gram of every sentence as a Python string and look
each up in a dict. Here the same features are found for a whole batch at once with numpy: character n-grams as
rolling hashes of code points, word bigrams (and pairs of words one apart) as pairs of unigram ids, all looked up in
open-addressing hash tables.
Since a feature's value is its count x IDF / sqrt(known n-grams) (features.py), a sentence's logit is a sum over
its n-grams of IDF x coefficient, scaled once: no grouping of n-grams by sentence. The scores equal the pipeline's
(`tests/test_compiled.py` checks it), and the arrays load from an .npz file without pickle, so scoring runs no code
from the model file.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from .text import VIEWS, WORD_TOKEN

# 1: L2-normalised TF-IDF (scored by scikit-learn since); 2: ScaledNgrams; 3: and whether group names are masked;
# 4: which view of the text (text.VIEWS) the model was trained on; 5: and pairs of words one word apart. A model
# whose scorer is of a format this code cannot read does not score (`Model.predict_proba` says to retrain it),
# rather than scoring on a view of the text it was not trained on, or unpickling its pipeline to score.
FORMAT = 5
_READABLE = (2, 3, 4, 5)
_MASK = (1 << 64) - 1
_PRIME = 0x100000001B3  # FNV-1a's 64-bit prime: odd, so multiplying mixes every bit of the code points
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)  # 2**64 / golden ratio: spreads any key's bits into a table slot
_TOKENS = re.compile(WORD_TOKEN[len("(?u)") :] + r"|\n")  # the word vectoriser's tokens, and the batch separator
_SEPARATOR = 0  # code point between words when their n-grams are found together: no n-gram crosses it
_WORDS = re.compile(r"[^ \n]+|\n")  # what char_wb splits a normalised text into, and the batch separator
# Words whose character part is remembered, and their characters in all (sentences are cut at 1,000 characters,
# so a word can be that long): about 15 MB at most, whatever the input.
_CACHED_WORDS = 1 << 16
_CACHED_CHARS = 1 << 20


def _view(z) -> int:
    """The view a stored scorer's model was trained on (an index into text.VIEWS)."""
    fmt = int(z["format"])
    if fmt >= 4:
        stored = z["view"]
        if stored.shape != () or stored.dtype.kind not in "iu" or not 0 <= int(stored) < len(VIEWS):
            raise ValueError(f"unknown view {stored.tolist()!r}")
        return int(stored)
    # Format 2 scorers were saved before group names were masked; format 3 ones say whether the first view was used.
    return int(fmt == 3 and bool(z["masks_groups"]))


class NotCompilable(Exception):
    """The pipeline is not the shape this module knows how to compile (another feature set or classifier)."""


def ngram_hash(gram: str) -> int:
    h = 0
    for ch in gram:
        h = (h * _PRIME + ord(ch)) & _MASK
    return h


class HashIndex:
    """uint64 keys to int32 values in an open-addressing table (linear probing, at most a quarter full), looked up
    for a whole array of keys at once; much faster than a binary search of a sorted array."""

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        self.bits = max(4, int(np.ceil(np.log2(max(len(keys), 1) * 4))))
        size = 1 << self.bits
        self.keys = np.zeros(size, dtype=np.uint64)
        self.values = np.full(size, -1, dtype=np.int32)
        keys = keys.astype(np.uint64)
        slot = self._home(keys)
        pending, probe = np.arange(len(keys)), 0
        # Insert all keys together: each round, every key still waiting tries its next slot; of the keys that want
        # the same free slot one wins. A key placed at home + k therefore finds home .. home + k - 1 occupied.
        while len(pending):
            want = (slot[pending] + np.uint64(probe)) & np.uint64(size - 1)
            free = np.flatnonzero(self.values[want] == -1)
            won_slots, first = np.unique(want[free], return_index=True)
            winners = pending[free[first]]
            self.keys[won_slots], self.values[won_slots] = keys[winners], values[winners]
            placed = np.zeros(len(pending), dtype=bool)
            placed[free[first]] = True
            pending, probe = pending[~placed], probe + 1
        self.max_probe = probe

    def _home(self, keys: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore"):
            return (keys * _FIBONACCI) >> np.uint64(64 - self.bits)

    def get(self, keys: np.ndarray) -> np.ndarray:
        """The value of each key, -1 where it is absent."""
        out = np.full(len(keys), -1, dtype=np.int32)
        where, slot = np.arange(len(keys)), self._home(keys)
        mask = np.uint64(len(self.keys) - 1)
        for _ in range(self.max_probe):
            value = self.values[slot]
            hit = self.keys[slot] == keys
            hit &= value >= 0
            out[where[hit]] = value[hit]
            go_on = (value >= 0) & ~hit  # an empty slot ends the search
            if not go_on.any():
                break
            where, keys, slot = where[go_on], keys[go_on], (slot[go_on] + np.uint64(1)) & mask
        return out


@dataclass(frozen=True)
class CompiledModel:
    unigrams: dict[str, int]  # token -> unigram rank
    unigram_feature: np.ndarray  # rank -> word feature index
    bigram_codes: np.ndarray  # rank_a * n_ranks + rank_b
    bigram_feature: np.ndarray
    word_idf: np.ndarray
    char_keys: tuple[np.ndarray, ...]  # per n-gram length: hashes
    char_feature: tuple[np.ndarray, ...]
    char_idf: np.ndarray
    char_min_n: int
    word_coef: np.ndarray  # (word features, categories)
    char_coef: np.ndarray
    intercept: np.ndarray
    view: int = 0  # the view of the text the model was trained on, an index into text.VIEWS (0: nothing masked)
    # Pairs of words with one word between them ("be … shot"), coded as bigrams are; none before format 5.
    skip_codes: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.uint64))
    skip_feature: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))

    def __post_init__(self) -> None:
        # Derived once per load: what scoring looks up. A token's rank is -1 if unknown, -2 for the batch separator.
        tokens = _Ranks(self.unigrams)
        tokens["\n"] = -2
        set_ = object.__setattr__
        set_(self, "_tokens", tokens)
        # Both kinds of word pair in one table (one lookup for a batch): pairs one apart are coded after all bigrams.
        n_ranks = len(self.unigram_feature)
        pair_codes = np.concatenate([self.bigram_codes, self.skip_codes + np.uint64(n_ranks * n_ranks)])
        set_(self, "_pairs", HashIndex(pair_codes, np.concatenate([self.bigram_feature, self.skip_feature])))
        set_(self, "_chars", HashIndex(np.concatenate(self.char_keys), np.concatenate(self.char_feature)))
        # IDF x coefficient, a row per category (contiguous, for gathering one category at a time).
        set_(self, "_word_weight", np.ascontiguousarray((self.word_idf[:, None] * self.word_coef).T))
        set_(self, "_char_weight", np.ascontiguousarray((self.char_idf[:, None] * self.char_coef).T))
        # Word -> row of the two arrays below; "\n" separates sentences. Filled as words are first seen.
        set_(self, "_word_rows", _Ranks({"\n": -2}))
        set_(self, "_capacity", (_CACHED_WORDS, _CACHED_CHARS))
        set_(self, "_cached_chars", 0)
        set_(self, "_cache_sums", np.zeros((_CACHED_WORDS, len(self.intercept))))
        set_(self, "_cache_known", np.zeros(_CACHED_WORDS))
        set_(self, "_cache_lock", threading.Lock())  # scoring from several threads must not interleave its updates

    def __reduce__(self):
        # The arrays only: the lookup tables, the word cache and its lock are rebuilt on the other side.
        return (type(self), tuple(getattr(self, f.name) for f in fields(self)))

    # --- building ------------------------------------------------------------------------------------------------

    @classmethod
    def from_pipeline(cls, pipeline) -> CompiledModel:
        """Compile a fitted `moderation.training.build_pipeline()`; NotCompilable if it has another shape."""
        try:
            features = dict(pipeline.named_steps["features"].transformer_list)
            word, char = features["word"], features["char"]
            estimators = pipeline.named_steps["classify"].estimators_
            view = pipeline.named_steps["normalize"].func
        except (KeyError, AttributeError) as e:
            raise NotCompilable(f"unexpected pipeline: {e}") from None
        if view not in VIEWS:
            raise NotCompilable(f"unknown normalisation {getattr(view, '__name__', view)!r}")
        from .features import SKIPPED, ScaledNgrams  # scikit-learn: imported only to compile, never to score

        for v in (word, char):
            if not isinstance(v, ScaledNgrams):
                raise NotCompilable(f"features of type {type(v).__name__}, expected ScaledNgrams")
        _expect(word, analyzer="word", ngram_range=(1, 2))
        if word.skips not in (0, 1):
            raise NotCompilable(f"word pairs up to {word.skips} words apart, expected at most 1")
        _expect(char, analyzer="char_wb")
        n_word = len(word.vocabulary_)
        coef = np.vstack([e.coef_.ravel() for e in estimators]).T  # (features, categories)
        intercept = np.array([float(e.intercept_[0]) for e in estimators])

        unigram_items = sorted((t, i) for t, i in word.vocabulary_.items() if " " not in t)
        unigrams = {t: rank for rank, (t, _) in enumerate(unigram_items)}
        n_ranks = len(unigrams)
        pairs: dict[int, tuple[list[int], list[int]]] = {1: ([], []), 2: ([], [])}  # by distance: codes, features
        for gram, i in word.vocabulary_.items():
            if " " in gram:
                a, *between, b = gram.split(" ")
                if between not in ([], [SKIPPED]):
                    raise NotCompilable(f"unexpected word feature {gram!r}")
                codes, feature = pairs[len(between) + 1]
                codes.append(unigrams[a] * n_ranks + unigrams[b])  # both are in the vocabulary: same min_df
                feature.append(i)
        min_n, max_n = char.ngram_range
        keys: list[list[int]] = [[] for _ in range(min_n, max_n + 1)]
        feats: list[list[int]] = [[] for _ in range(min_n, max_n + 1)]
        for gram, i in char.vocabulary_.items():
            keys[len(gram) - min_n].append(ngram_hash(gram))
            feats[len(gram) - min_n].append(i)
        if len({k for ks in keys for k in ks}) != len(char.vocabulary_):
            raise NotCompilable("two character n-grams share a hash")
        return cls(
            unigrams=unigrams,
            unigram_feature=np.array([i for _, i in unigram_items], dtype=np.int64),
            bigram_codes=np.array(pairs[1][0], dtype=np.uint64),
            bigram_feature=np.array(pairs[1][1], dtype=np.int32),
            word_idf=word.idf_.astype(np.float64),
            char_keys=tuple(np.array(k, dtype=np.uint64) for k in keys),
            char_feature=tuple(np.array(f, dtype=np.int32) for f in feats),
            char_idf=char.idf_.astype(np.float64),
            char_min_n=min_n,
            word_coef=coef[:n_word],
            char_coef=coef[n_word:],
            intercept=intercept,
            view=VIEWS.index(view),
            skip_codes=np.array(pairs[2][0], dtype=np.uint64),
            skip_feature=np.array(pairs[2][1], dtype=np.int32),
        )

    # --- storage -------------------------------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        arrays = {
            "format": np.array(FORMAT),
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
            "view": np.array(self.view),
            "skip_codes": self.skip_codes,
            "skip_feature": self.skip_feature,
        }
        for n, (k, f) in enumerate(zip(self.char_keys, self.char_feature, strict=True)):
            arrays[f"char_keys_{n}"], arrays[f"char_feature_{n}"] = k, f
        with path.open("wb") as fh:
            np.savez(fh, **arrays)

    @classmethod
    def load(cls, path: Path) -> CompiledModel | None:
        """The scorer stored at `path`, or None if it is of a format this code cannot read."""
        with np.load(path, allow_pickle=False) as z:
            if "format" not in z.files or int(z["format"]) not in _READABLE:
                return None
            lengths = sum(1 for name in z.files if name.startswith("char_keys_"))
            tokens = z["unigram_tokens"].tolist()
            skips = {"skip_codes": z["skip_codes"], "skip_feature": z["skip_feature"]} if int(z["format"]) >= 5 else {}
            arrays = dict(
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
                view=_view(z),
                **skips,
            )
        _check(arrays)
        return cls(**arrays)

    # --- scoring -------------------------------------------------------------------------------------------------

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """One probability per text and category, as the compiled pipeline would give."""
        return self.predict_proba_normalized(VIEWS[self.view](texts))  # what the pipeline's normalise step was

    def known_share(self, texts: list[str]) -> list[float]:
        """For each text, the share of its words, as the model reads them, that the model has a weight for (0 for a
        text without words): how much of it the model can read at all."""
        out = []
        for doc in VIEWS[self.view](texts):
            words = _TOKENS.findall(doc)
            out.append(sum(w in self.unigrams for w in words) / len(words) if words else 0.0)
        return out

    def predict_proba_normalized(self, docs: list[str]) -> np.ndarray:
        logits = np.tile(self.intercept, (len(docs), 1))
        logits += self._word_scores(docs)
        logits += self._char_scores(docs)
        return 1.0 / (1.0 + np.exp(-logits))

    def _word_scores(self, docs: list[str]) -> np.ndarray:
        # One pass over the batch: "\n" separates the documents (a normalised text has no line break of its own).
        tokens = _TOKENS.findall("\n".join(docs))
        ranks = np.fromiter(map(self._tokens.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        doc_of = np.cumsum(ranks == -2)
        known = ranks >= 0
        unigram_docs, unigram_feats = doc_of[known], self.unigram_feature[ranks[known]]
        n_ranks = len(self.unigram_feature)
        near = known[1:] & known[:-1]  # a separator between two documents is never known: no bigram crosses it
        codes, pair_docs = [ranks[:-1][near] * n_ranks + ranks[1:][near]], [doc_of[1:][near]]
        if len(self.skip_codes):
            apart = known[2:] & known[:-2] & (doc_of[2:] == doc_of[:-2])  # nor a pair one word apart
            codes.append(ranks[:-2][apart] * n_ranks + ranks[2:][apart] + n_ranks * n_ranks)
            pair_docs.append(doc_of[2:][apart])
        pair_feats = self._pairs.get(np.concatenate(codes).astype(np.uint64))
        found = pair_feats >= 0
        docs_of = np.concatenate([unigram_docs, np.concatenate(pair_docs)[found]])
        feats = np.concatenate([unigram_feats, pair_feats[found]])
        return _scaled_sums(len(docs), docs_of, feats, self._word_weight)

    def _char_scores(self, docs: list[str]) -> np.ndarray:
        # char_wb n-grams never cross white space, so a sentence's character part is the sum of its words' parts
        # (and its count of known n-grams the sum of theirs). Words repeat: each distinct one is hashed and looked
        # up once, then remembered, up to a bounded number of words.
        tokens = _WORDS.findall("\n".join(docs))
        with self._cache_lock:
            rows, sums, known = self._cached_rows(tokens)
            doc_of = np.cumsum(rows == -2)
            words = rows >= 0
            doc_of, rows = doc_of[words], rows[words]
            per_doc = np.bincount(doc_of, weights=known[rows], minlength=len(docs))
            scores = _column_sums(len(docs), doc_of, sums.T, rows)
        return scores / np.sqrt(np.maximum(per_doc, 1))[:, None]

    def _cached_rows(self, tokens: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Each token's row in the returned (sums, known) arrays, -2 for the sentence separator; words not seen
        before are worked out and remembered, the cache emptied first if they would overflow it."""
        cache, sums, known = self._word_rows, self._cache_sums, self._cache_known
        rows = np.fromiter(map(cache.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        if not (rows == -1).any():
            return rows, sums, known
        max_words, max_chars = self._capacity
        new = list(dict.fromkeys(t for t, r in zip(tokens, rows.tolist(), strict=True) if r == -1))
        chars = sum(map(len, new))
        if len(cache) - 1 + len(new) > max_words or self._cached_chars + chars > max_chars:
            cache.clear()
            cache["\n"] = -2
            object.__setattr__(self, "_cached_chars", 0)
            new = list(dict.fromkeys(t for t in tokens if t != "\n"))
            chars = sum(map(len, new))
        if len(new) > max_words or chars > max_chars:  # more than the cache holds: this batch on its own
            cache = _Ranks({"\n": -2})
            sums, known = np.zeros((len(new), len(self.intercept))), np.zeros(len(new))
        else:
            object.__setattr__(self, "_cached_chars", self._cached_chars + chars)
        first = len(cache) - 1
        sums[first : first + len(new)], known[first : first + len(new)] = self._word_char_sums(new)
        cache.update(zip(new, range(first, first + len(new)), strict=True))
        rows = np.fromiter(map(cache.__getitem__, tokens), dtype=np.int64, count=len(tokens))
        return rows, sums, known

    def _word_char_sums(self, words: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Per word, the sum of its character n-grams' IDF x coefficient (a column per category), and how many of
        its n-grams are known."""
        # " word " per word, separated by code point 0: the char_wb windows are exactly those inside one padded
        # word with no space inside them (only at their ends).
        joined = "\0".join(f" {w} " for w in words)
        codes = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.uint64)
        word_at = np.repeat(np.arange(len(words)), [len(w) + 3 for w in words])[: len(codes)]
        space = codes == 32
        stop = codes == _SEPARATOR
        hashes, positions = [], []
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
                at = np.flatnonzero(~bad & ~interior_space)
                hashes.append(h[at])
                positions.append(at)
        feats = self._chars.get(np.concatenate(hashes))
        found = feats >= 0
        of = word_at[np.concatenate(positions)[found]]
        return _column_sums(len(words), of, self._char_weight, feats[found]), np.bincount(of, minlength=len(words))


class _Ranks(dict):
    """Token -> unigram rank; -1 for a token not in the vocabulary, without a Python-level default per lookup."""

    def __missing__(self, key: str) -> int:
        return -1


def _scaled_sums(n_docs: int, docs: np.ndarray, feats: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Per document, the sum of its n-grams' IDF x coefficient (`weight`: categories x features), divided by the
    square root of how many n-grams it has."""
    known = np.bincount(docs, minlength=n_docs)
    return _column_sums(n_docs, docs, weight, feats) / np.sqrt(np.maximum(known, 1))[:, None]


def _column_sums(n: int, group: np.ndarray, columns: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(n, len(columns)): for each group 0..n-1, the sum of column[at[i]] over the i with group[i] == it."""
    return np.column_stack([np.bincount(group, weights=column[at], minlength=n) for column in columns])


def _expect(vectorizer, **params) -> None:
    for name, want in params.items():
        got = getattr(vectorizer, name, None)
        if got != want:
            raise NotCompilable(f"{type(vectorizer).__name__}.{name} is {got!r}, expected {want!r}")


def _check(a: dict) -> None:
    """ValueError unless a stored scorer's arrays fit together: a file whose hash matches its card can still have been
    written by hand, and an index out of range would otherwise fail at scoring, as a traceback."""
    n_word, n_char, n_cat = len(a["word_idf"]), len(a["char_idf"]), len(a["intercept"])
    if a["word_coef"].shape != (n_word, n_cat) or a["char_coef"].shape != (n_char, n_cat):
        raise ValueError("coefficient arrays do not match the features and categories")
    skips = (a.get("skip_codes", ()), a.get("skip_feature", ()))
    if len(a["unigrams"]) != len(a["unigram_feature"]) or any(
        len(codes) != len(feats) for codes, feats in ((a["bigram_codes"], a["bigram_feature"]), skips)
    ):
        raise ValueError("word feature arrays of different lengths")
    if len(a["char_keys"]) != len(a["char_feature"]) or any(
        len(k) != len(f) for k, f in zip(a["char_keys"], a["char_feature"], strict=True)
    ):
        raise ValueError("character feature arrays of different lengths")
    words = (a["unigram_feature"], a["bigram_feature"], np.asarray(skips[1]))
    for indices, bound in (*((w, n_word) for w in words), *((f, n_char) for f in a["char_feature"])):
        if len(indices) and (indices.min() < 0 or indices.max() >= bound):
            raise ValueError("a feature index out of range")
