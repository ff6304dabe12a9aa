from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moderation.compiled import CompiledModel
from moderation.errors import ModelError
from moderation.model import SCORER_FILE, load_model
from moderation.registry import resolve
from moderation.training import positive_proba

from .conftest import SMALL_SET, copy_version


@pytest.fixture(scope="module")
def models(models_dir: Path):
    model = load_model(resolve(models_dir))
    return model, model.pipeline


EDGE_CASES = ["", " ", "a", "k1ll", "I", "a b c d", "ÿ ü 🚀", "x" * 300, "one  two\tthree\nfour", "- bullet", "\u200b"]


def test_compiled_scores_equal_the_pipeline(models) -> None:
    model, pipeline = models
    texts = [t for t, _ in SMALL_SET] + EDGE_CASES
    assert np.allclose(model.compiled.predict_proba(texts), positive_proba(pipeline, texts), atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.sampled_from(list("kill you them gay a.!?1@ \n\tí\u0430")), max_size=40),
                min_size=1, max_size=5))  # fmt: skip
def test_compiled_scores_equal_the_pipeline_on_any_text(models, texts: list[str]) -> None:
    model, pipeline = models
    assert np.allclose(model.compiled.predict_proba(texts), positive_proba(pipeline, texts), atol=1e-6)


def test_the_saved_scorer_loads_without_pickle_and_scores_the_same(models, tmp_path: Path) -> None:
    model, _ = models
    path = tmp_path / "s.npz"
    model.compiled.save(path)
    with np.load(path, allow_pickle=False) as z:  # would raise if any array needed pickle
        assert "char_keys_0" in z.files
    texts = [t for t, _ in SMALL_SET]
    assert np.array_equal(CompiledModel.load(path).predict_proba(texts), model.compiled.predict_proba(texts))


def test_a_tampered_scorer_is_refused(models_dir: Path, tmp_path: Path) -> None:
    copy = copy_version(models_dir, tmp_path)
    scorer = copy / SCORER_FILE
    blob = bytearray(scorer.read_bytes())
    blob[-10] ^= 1
    scorer.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="does not match its card"):
        load_model(copy)


def test_scoring_does_not_unpickle(models_dir: Path) -> None:
    model = load_model(resolve(models_dir))
    model.predict_proba(["I will kill you"])
    assert model._pipeline is None  # the pickle was never loaded
