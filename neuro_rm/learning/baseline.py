"""The floor a learned speaker model must clear: logistic regression on the very frames it sees.

scikit-learn's solver is used rather than a hand-written one because a baseline is only worth
reporting if its own training is beyond doubt (exact convex optimum, well-tested implementation).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from neuro_rm.learning.data import LabelledSet

C_GRID = (1e-3, 1e-2, 1e-1, 1.0, 10.0)  # inverse L2 strength, chosen on the validation split


@dataclass(frozen=True)
class LinearBaseline:
    accuracy: float  # on the test split
    val_accuracy: float  # of the chosen C
    c: float  # the chosen inverse regularisation strength


def _flat(data: LabelledSet) -> tuple[np.ndarray, np.ndarray]:
    return data.x.reshape(len(data), -1).double().numpy(), data.y.numpy()


def linear_baseline(train: LabelledSet, val: LabelledSet, test: LabelledSet, c_grid: Sequence[float] = C_GRID,
                    max_iter: int = 1000) -> LinearBaseline:
    """Multinomial logistic regression on flattened, standardised spike-count frames: fit on ``train``,
    pick C on ``val`` (ties: the stronger regularisation), report accuracy on ``test``."""
    if len(train) == 0 or len(val) == 0 or len(test) == 0:
        raise ValueError("linear_baseline needs non-empty train, val and test splits")
    (x, y), (xv, yv), (xt, yt) = _flat(train), _flat(val), _flat(test)
    best = None
    for c in sorted(c_grid):
        model = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=max_iter))
        with warnings.catch_warnings():  # a not fully converged large-C fit is still a valid candidate
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(x, y)
        score = float((model.predict(xv) == yv).mean())
        if best is None or score > best[0]:
            best = (score, c, model)
    score, c, model = best
    return LinearBaseline(accuracy=float((model.predict(xt) == yt).mean()), val_accuracy=score, c=c)
