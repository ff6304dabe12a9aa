"""The classifier: a scikit-learn pipeline of normalisation, word and character n-grams and one logistic regression
per category; its training with cross-validated thresholds; and its storage beside a JSON card."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import joblib
import numpy as np
import scipy
import sklearn
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, precision_recall_fscore_support, roc_auc_score
from sklearn.model_selection import KFold
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import FunctionTransformer

from .data import LabelledSet, fingerprint
from .errors import ModelError
from .policy import Policy
from .text import normalize, normalize_many

MODEL_FILE = "model.joblib"
CARD_FILE = "card.json"
CARD_FORMAT = 1
_PUNCTUATION = " !\"#%&'()*+,-./:;<=>?[\\]^_`{}~…“”‘’"


def build_pipeline(c: float = 8.0, seed: int = 0) -> Pipeline:
    """An untrained pipeline: raw sentences in, one probability per category out."""
    # Character n-grams inside word boundaries carry what survives obfuscation that normalisation did not fold
    # ("kil", "murd"); word n-grams carry context such as negation and "the process".
    words = TfidfVectorizer(
        analyzer="word", token_pattern=r"(?u)\b\w+\b", ngram_range=(1, 2), min_df=2, sublinear_tf=True,
        lowercase=False, dtype=np.float32,
    )  # fmt: skip
    chars = TfidfVectorizer(
        analyzer="char_wb", ngram_range=(2, 5), min_df=2, sublinear_tf=True, lowercase=False, dtype=np.float32
    )
    classifier = LogisticRegression(C=c, solver="liblinear", max_iter=1000, random_state=seed)
    return Pipeline(
        [
            ("normalize", FunctionTransformer(normalize_many)),
            ("features", FeatureUnion([("word", words), ("char", chars)])),
            ("classify", OneVsRestClassifier(classifier)),
        ]
    )


@dataclass(frozen=True)
class Model:
    """A trained pipeline and the card that describes it."""

    pipeline: Pipeline
    card: dict
    path: Path | None = None

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(self.card["categories"])

    @property
    def version(self) -> str:
        return self.card["version"]

    def thresholds(self, policy: Policy, override: float | None = None) -> dict[str, float]:
        """Each policy category's threshold: the override, else the policy's fixed value, else the model's."""
        missing = [c for c in policy.ids if c not in self.card["thresholds"]]
        if missing:
            raise ModelError(
                f"model {self.version} has no categor{'y' if len(missing) == 1 else 'ies'} {', '.join(missing)} "
                f"of policy {policy.source} (it knows: {', '.join(self.categories)}); retrain it with this policy"
            )
        return {
            c.id: override
            if override is not None
            else c.threshold
            if c.threshold is not None
            else self.card["thresholds"][c.id]
            for c in policy.categories
        }

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Probabilities, one row per text and one column per category in `categories` order."""
        if isinstance(texts, str):
            raise TypeError("predict_proba expects a sequence of texts, not a single string")
        if not texts:
            return np.zeros((0, len(self.categories)))
        return positive_proba(self.pipeline, texts)


def positive_proba(pipeline: Pipeline, texts: Sequence[str]) -> np.ndarray:
    """One probability column per category, also for a single category (which scikit-learn treats as binary and
    answers with two columns, [P(no), P(yes)])."""
    proba = pipeline.predict_proba(texts)
    classifier = pipeline.named_steps["classify"]
    if classifier.label_binarizer_.y_type_ == "binary":
        return proba[:, 1:]
    return proba


# --- training --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CategoryMetrics:
    threshold: float
    precision: float
    recall: float
    f1: float
    roc_auc: float
    pr_auc: float
    brier: float
    support: int


def train(
    data: LabelledSet,
    policy: Policy,
    *,
    folds: int = 5,
    seed: int = 0,
    c: float = 8.0,
    n_jobs: int = 1,
    progress: Callable[[str], None] | None = None,
) -> tuple[Model, dict[str, CategoryMetrics]]:
    """Cross-validate, choose thresholds on the held-out folds, then fit on everything."""
    categories = policy.ids
    texts = data.texts()
    y = np.asarray(data.matrix(categories), dtype=np.int8)
    for j, cat in enumerate(categories):
        positives = int(y[:, j].sum())
        if positives < folds or len(y) - positives < folds:
            raise ModelError(
                f"category {cat!r} has {positives} positive and {len(y) - positives} negative "
                f"examples; training needs at least {folds} of each"
            )
    say = progress or (lambda _: None)
    oof = np.zeros(y.shape, dtype=float)
    splits = list(KFold(folds, shuffle=True, random_state=seed).split(texts))

    def fit_fold(i: int) -> tuple[int, np.ndarray]:
        train_idx, test_idx = splits[i]
        pipe = build_pipeline(c, seed).fit([texts[k] for k in train_idx], y[train_idx])
        return i, positive_proba(pipe, [texts[k] for k in test_idx])

    results = joblib.Parallel(n_jobs=n_jobs, return_as="generator")(joblib.delayed(fit_fold)(i) for i in range(folds))
    for done, (i, proba) in enumerate(results, 1):
        oof[splits[i][1]] = proba
        say(f"cross-validation fold {done}/{folds}")
    metrics = {
        cat: held_out_metrics(y[:, j], oof[:, j], policy.category(cat).target_precision)
        for j, cat in enumerate(categories)
    }
    say("fitting on all data")
    pipeline = build_pipeline(c, seed).fit(texts, y)
    card = {
        "format": CARD_FORMAT,
        "version": "",
        "created": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "categories": list(categories),
        "thresholds": {cat: m.threshold for cat, m in metrics.items()},
        "policy": policy.name,
        "params": {"c": c, "seed": seed, "folds": folds},
        "data": {
            "sha256": fingerprint(data.examples),
            "examples": len(texts),
            "positives": {cat: int(y[:, j].sum()) for j, cat in enumerate(categories)},
        },
        "cv": {cat: _rounded(m) for cat, m in metrics.items()},
        "libraries": library_versions(),
    }
    return Model(pipeline, card), metrics


def held_out_metrics(y: np.ndarray, p: np.ndarray, target_precision: float | None) -> CategoryMetrics:
    """Metrics of one category on out-of-fold scores, at the threshold chosen from those same scores."""
    threshold = choose_threshold(y, p, target_precision)
    pred = p >= threshold
    precision, recall, f1, _ = precision_recall_fscore_support(y, pred, average="binary", zero_division=0)
    return CategoryMetrics(
        threshold=threshold,
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        roc_auc=float(roc_auc_score(y, p)),
        pr_auc=float(average_precision_score(y, p)),
        brier=float(brier_score_loss(y, p)),
        support=int(y.sum()),
    )


def choose_threshold(y: np.ndarray, p: np.ndarray, target_precision: float | None = None) -> float:
    """The threshold with the best F1, or the lowest whose precision reaches `target_precision`."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    flagged = np.arange(1, len(ys) + 1)
    # Only thresholds between distinct scores are real choices.
    last = np.r_[ps[1:] != ps[:-1], True]
    tp, flagged, ps = tp[last], flagged[last], ps[last]
    precision = tp / flagged
    recall = tp / max(int(ys.sum()), 1)
    if target_precision is not None:
        ok = np.flatnonzero(precision >= target_precision)
        if ok.size:
            return round(float(ps[ok[-1]]), 4)
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
    # Ties go to the higher threshold: fewer flags for the same F1.
    return round(float(ps[int(np.argmax(f1))]), 4)


def _rounded(m: CategoryMetrics) -> dict:
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(m).items()}


def library_versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        "scikit-learn": sklearn.__version__,
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "joblib": joblib.__version__,
    }


# --- storage ---------------------------------------------------------------------------------------------------------


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_model(model: Model, directory: Path) -> Model:
    """Write model file and card into a new directory, atomically: a crash leaves either nothing or both."""
    if directory.exists():
        raise ModelError(f"{directory}: already exists; a model version is never overwritten")
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.partial-{os.getpid()}")
    try:
        tmp.mkdir()
        joblib.dump(model.pipeline, tmp / MODEL_FILE, compress=3)
        card = {
            **model.card,
            "version": directory.name,
            "model_file": MODEL_FILE,
            "model_sha256": sha256_file(tmp / MODEL_FILE),
        }
        _write_synced(tmp / CARD_FILE, json.dumps(card, indent=2, sort_keys=False) + "\n")
        _fsync_path(tmp / MODEL_FILE)
        tmp.rename(directory)
        _fsync_path(directory.parent)
    except OSError as e:
        _remove_tree(tmp)
        raise ModelError(f"{directory}: cannot write model: {e.strerror or e}") from None
    return Model(model.pipeline, card, directory)


def read_card(directory: Path) -> dict:
    path = directory / CARD_FILE
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelError(f"{directory}: not a model directory (no {CARD_FILE})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelError(f"{path}: unreadable model card: {e}") from None
    required = ("categories", "thresholds", "model_sha256", "version")
    if not isinstance(card, dict) or any(k not in card for k in required):
        raise ModelError(f"{path}: not a model card (needs {', '.join(required)})")
    return card


def load_model(directory: Path, warn: Callable[[str], None] | None = None) -> Model:
    """Load a model after checking its file against the SHA-256 in its card: unpickling runs code."""
    card = read_card(directory)
    path = directory / card.get("model_file", MODEL_FILE)
    try:
        actual = sha256_file(path)
    except FileNotFoundError:
        raise ModelError(f"{path}: model file missing") from None
    except OSError as e:
        raise ModelError(f"{path}: cannot read model file: {e.strerror}") from None
    if actual != card["model_sha256"]:
        raise ModelError(
            f"{path}: SHA-256 {actual[:12]}… does not match its card ({card['model_sha256'][:12]}…); "
            "the file was changed or truncated, refusing to load it"
        )
    trained_with = card.get("libraries", {}).get("scikit-learn")
    if warn and trained_with and trained_with != sklearn.__version__:
        warn(
            f"model {card['version']} was trained with scikit-learn {trained_with}, this is "
            f"{sklearn.__version__}; if scores look wrong, retrain it with `moderation train`"
        )
    with warnings.catch_warnings():
        # The version warning above is the one a user can act on; sklearn's own would repeat it per estimator.
        warnings.simplefilter("ignore", category=UserWarning)
        try:
            pipeline = joblib.load(path)
        except Exception as e:
            raise ModelError(f"{path}: cannot load model: {type(e).__name__}: {e}") from None
    if not isinstance(pipeline, Pipeline):
        raise ModelError(f"{path}: not a moderation pipeline")
    return Model(pipeline, card, directory)


def _write_synced(path: Path, text: str) -> None:
    with path.open("w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_tree(path: Path) -> None:
    if path.exists():
        for child in path.iterdir():
            child.unlink(missing_ok=True)
        path.rmdir()


# --- explanation -----------------------------------------------------------------------------------------------------


def explain(model: Model, text: str, top: int = 5) -> dict[str, list[tuple[str, float]]]:
    """Per category, the terms of `text` with the largest contributions to its score, largest first.

    A contribution is coefficient times feature value. Character n-grams are credited to the words that contain
    them, so a reader sees "kill" rather than " kil" and "ill ".
    """
    norm = normalize(text)
    features = model.pipeline.named_steps["features"]
    word_vec: TfidfVectorizer = dict(features.transformer_list)["word"]
    char_vec: TfidfVectorizer = dict(features.transformer_list)["char"]
    x = features.transform([norm]).tocsr()
    n_word = len(word_vec.vocabulary_)
    word_names = {i: t for t, i in word_vec.vocabulary_.items()}
    char_names = {i: t for t, i in char_vec.vocabulary_.items()}
    words = list(dict.fromkeys(norm.split()))  # the char_wb analyser's words: white-space separated
    out = {}
    for j, cat in enumerate(model.categories):
        coef = model.pipeline.named_steps["classify"].estimators_[j].coef_.ravel()
        totals: dict[str, float] = {}
        for idx, value in zip(x.indices, x.data, strict=True):
            contribution = float(coef[idx] * value)
            if idx < n_word:
                term = word_names[idx]
                totals[term] = totals.get(term, 0.0) + contribution
            else:
                gram = char_names[idx - n_word]
                owners = [w for w in words if gram in f" {w} "] or [gram]
                for w in owners:
                    term = w.strip(_PUNCTUATION) or w.strip()
                    totals[term] = totals.get(term, 0.0) + contribution / len(owners)
        ranked = sorted(totals.items(), key=lambda kv: -abs(kv[1]))
        out[cat] = [(term, round(v, 3)) for term, v in ranked[:top]]
    return out
