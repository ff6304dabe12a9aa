from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from moderation.features import SKIPPED, ScaledNgrams, word_ngrams_and_pairs

TEXTS = ["kill kill the process", "the cat sat", "kill the cat", "a dog"]


def test_values_are_counts_times_idf_over_the_root_of_known_ngrams() -> None:
    features = ScaledNgrams(analyzer="word", ngram_range=(1, 1), min_df=2)
    x = features.fit_transform(TEXTS).toarray()
    vocabulary = features.vocabulary_
    assert set(vocabulary) == {"kill", "the", "cat"}  # min_df=2: "process", "sat", "a", "dog" appear once
    idf = {t: np.log(5 / (1 + df)) + 1 for t, df in {"kill": 2, "the": 3, "cat": 2}.items()}
    # "kill kill the process": kill twice and the once are known (3 n-grams); "process" is not counted
    row = x[0]
    assert row[vocabulary["kill"]] == pytest.approx(2 * idf["kill"] / np.sqrt(3))
    assert row[vocabulary["the"]] == pytest.approx(idf["the"] / np.sqrt(3))
    assert row[vocabulary["cat"]] == 0
    assert not x[3].any()  # "a dog": nothing known, no division by zero


def test_character_ngrams_stay_inside_words() -> None:
    features = ScaledNgrams(analyzer="char_wb", ngram_range=(2, 3), min_df=1).fit(["ab cd"])
    assert "b c" not in features.vocabulary_ and " ab" in features.vocabulary_


def test_it_follows_scikit_learn_conventions() -> None:
    features = ScaledNgrams(analyzer="char_wb", ngram_range=(2, 4), min_df=1)
    assert clone(features).get_params() == features.get_params()
    assert not hasattr(features, "idf_")  # no work in __init__
    with pytest.raises(NotFittedError):
        features.transform(["x"])
    fitted = features.fit(TEXTS)
    assert fitted is features
    assert list(features.get_feature_names_out()) == sorted(features.vocabulary_, key=features.vocabulary_.get)
    assert np.allclose(features.transform(TEXTS).toarray(), features.fit_transform(TEXTS).toarray())


def test_word_pairs_one_apart_join_the_word_ngrams() -> None:
    plain = ScaledNgrams(analyzer="word", ngram_range=(1, 2), min_df=1).fit(TEXTS)
    paired = ScaledNgrams(analyzer="word", ngram_range=(1, 2), min_df=1, skips=1).fit(TEXTS)
    added = set(paired.vocabulary_) - set(plain.vocabulary_)
    assert set(plain.vocabulary_) <= set(paired.vocabulary_)  # the same n-grams as scikit-learn's word analyser
    assert added == {"kill … the", "kill … process", "the … sat", "kill … cat"}
    assert f"a {SKIPPED} b" in word_ngrams_and_pairs("a x b", n=1, skips=1)
    assert word_ngrams_and_pairs("a x y b", n=1, skips=2)[-1] == f"a {SKIPPED} {SKIPPED} b"


def test_word_pairs_need_the_word_analyser() -> None:
    with pytest.raises(ValueError, match="word analyzer"):
        ScaledNgrams(analyzer="char_wb", ngram_range=(2, 4), skips=1).fit(TEXTS)
    with pytest.raises(ValueError, match="word analyzer"):
        ScaledNgrams(analyzer="word", ngram_range=(2, 2), skips=1).fit(TEXTS)


def test_features_pickled_before_word_pairs_load_without_them() -> None:
    features = ScaledNgrams(analyzer="word", ngram_range=(1, 2), min_df=1).fit(TEXTS)
    state = features.__getstate__()
    del state["skips"]  # as pickles made before the parameter existed
    old = ScaledNgrams.__new__(ScaledNgrams)
    old.__setstate__(state)
    assert old.skips == 0 and old.get_params()["skips"] == 0
    assert np.allclose(old.transform(TEXTS).toarray(), features.transform(TEXTS).toarray())
