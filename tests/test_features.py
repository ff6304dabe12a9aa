from __future__ import annotations

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from moderation.features import ScaledNgrams

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
