"""TweetEval hate and offensive: the project's own training pipeline on a public benchmark.

For each task: fit `moderation.model.build_pipeline` on the train split, choose the decision threshold on val
(best macro-F1), and report macro-F1 on test beside the published table of the TweetEval README.

    python benchmarks/tweeteval.py [--shared ../shared] [--c 1,4,16]

The data is read from ../shared/data/tweeteval (evaluation only: nothing is copied into this repository). When it
is absent the script says so and exits 0, so it can run anywhere.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.metrics import f1_score

from moderation.training import build_pipeline, positive_proba

# Macro-F1 x 100 on test, from shared/data/tweeteval/README.md (the TweetEval README's table).
PUBLISHED = {
    "SVM": (36.7, 52.3),
    "LSTM": (52.6, 71.7),
    "FastText": (50.6, 73.4),
    "RoBERTa-Base": (46.6, 79.5),
    "RoBERTa-Twitter": (49.9, 77.1),
    "RoBERTa-Retrained": (52.3, 80.5),
    "BERTweet": (56.4, 79.5),
    "TimeLMs-2021": (55.1, 82.2),
}
TASKS = ("hate", "offensive")


def read_split(folder: Path, split: str) -> tuple[list[str], np.ndarray]:
    texts = (folder / f"{split}_text.txt").read_text(encoding="utf-8").splitlines()
    labels = np.array([int(x) for x in (folder / f"{split}_labels.txt").read_text().split()])
    if len(texts) != len(labels):
        raise SystemExit(f"{folder}: {split} has {len(texts)} texts but {len(labels)} labels")
    return texts, labels


def best_macro_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold on `p` with the best macro-F1 on (y, p): both classes count, as in TweetEval."""
    candidates = np.unique(np.round(p, 3))
    scores = [f1_score(y, p >= t, average="macro") for t in candidates]
    return float(candidates[int(np.argmax(scores))])


def run_task(folder: Path, c: float) -> dict:
    (xtr, ytr), (xva, yva), (xte, yte) = (read_split(folder, s) for s in ("train", "val", "test"))
    start = time.perf_counter()
    pipe = build_pipeline(c=c).fit(xtr, ytr.reshape(-1, 1))
    fit_s = time.perf_counter() - start
    p_val = positive_proba(pipe, xva)[:, 0]
    threshold = best_macro_threshold(yva, p_val)
    p_test = positive_proba(pipe, xte)[:, 0]
    return {
        "c": c,
        "threshold": threshold,
        "val": f1_score(yva, p_val >= threshold, average="macro"),
        "test": f1_score(yte, p_test >= threshold, average="macro"),
        "test_at_0.5": f1_score(yte, p_test >= 0.5, average="macro"),
        "fit_seconds": fit_s,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[1].parent / "shared")
    ap.add_argument("--c", default="8", help="comma-separated regularisation strengths to report (default 8)")
    args = ap.parse_args()
    root = args.shared / "data" / "tweeteval"
    if not all((root / task / "test_text.txt").is_file() for task in TASKS):
        print(f"skipped: TweetEval not found under {root} (it lives in ../shared/data/tweeteval)", file=sys.stderr)
        return 0
    results = {task: [run_task(root / task, float(c)) for c in args.c.split(",")] for task in TASKS}
    print(f"{'task':<10} {'C':>5} {'threshold':>9} {'val F1':>7} {'test F1':>8} {'test@0.5':>8} {'fit s':>6}")
    for task, rows in results.items():
        for r in rows:
            print(
                f"{task:<10} {r['c']:>5g} {r['threshold']:>9.3f} {100 * r['val']:>7.1f} {100 * r['test']:>8.1f} "
                f"{100 * r['test_at_0.5']:>8.1f} {r['fit_seconds']:>6.1f}"
            )
    print("\npublished (test macro-F1 x 100)   hate  offensive")
    for name, (hate, offensive) in PUBLISHED.items():
        print(f"  {name:<30} {hate:>5.1f} {offensive:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
