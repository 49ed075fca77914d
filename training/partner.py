"""Fitting the boosted partner on the training split, and choosing per task on the validation
split how much of it to blend with the tuned model.

The partner is what a data team would build (the gbm_stacked baseline's recipe, in LightGBM so
that it can be stored as text): out-of-fold TF-IDF scores of every task beside the structured
fields. The blend weight is the one with the lowest validation log loss, a proper score that
neither model's training saw; at equal loss the tuned model alone is kept.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import lightgbm
import numpy as np
from sklearn.metrics import log_loss

from claims.partner import BoostedPartner, PartnerState, TextScorer
from schemas.claim import Claim
from training.baselines import TfidfLogisticBaseline, out_of_fold_text_scores
from training.labels import IGNORE

BOOSTING = {  # the tuned settings of the data set READMEs' strongest classical baseline
    "learning_rate": 0.04,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "lambda_l2": 1.0,
    "verbose": -1,
    "deterministic": True,
    "force_row_wise": True,
}
MAX_ROUNDS = 600
EARLY_STOPPING_FRACTION = 0.1
BLEND_GRID = np.round(np.linspace(0.0, 1.0, 11), 2)


def _text_scorer(model: TfidfLogisticBaseline) -> TextScorer:
    vectorizer = model.vectorizer
    return TextScorer(
        vocabulary={term: int(index) for term, index in vectorizer.vocabulary_.items()},
        idf=vectorizer.idf_.tolist(),
        classes={task: m.classes_.tolist() for task, m in model.models.items()},
        coefficients={task: m.coef_.tolist() for task, m in model.models.items()},
        intercepts={task: m.intercept_.tolist() for task, m in model.models.items()},
        label_counts=model.label_counts,
    )


def _boost(
    matrix: np.ndarray, targets: np.ndarray, label_count: int, seed: int
) -> lightgbm.Booster:
    """Rounds chosen by early stopping on a random tenth of the rows, as scikit-learn's
    histogram boosting does."""
    rng = np.random.default_rng(seed)
    held = rng.random(len(targets)) < EARLY_STOPPING_FRACTION
    objective = (
        {"objective": "binary"}
        if label_count == 2
        else {"objective": "multiclass", "num_class": label_count}
    )
    parameters = {**BOOSTING, **objective, "seed": seed}
    if held.all() or not held.any():  # too few rows to hold any out: every round is kept
        return lightgbm.train(parameters, lightgbm.Dataset(matrix, targets), MAX_ROUNDS)
    train = lightgbm.Dataset(matrix[~held], targets[~held])
    stopping = lightgbm.Dataset(matrix[held], targets[held], reference=train)
    return lightgbm.train(
        parameters,
        train,
        num_boost_round=MAX_ROUNDS,
        valid_sets=[stopping],
        callbacks=[lightgbm.early_stopping(50, verbose=False)],
    )


def fit_partner(
    claims: Sequence[Claim],
    structured: np.ndarray,
    targets: dict[str, np.ndarray],
    label_counts: dict[str, int],
    seed: int,
) -> BoostedPartner:
    """Fitted on the training split; every task starts with the tuned model alone (weight 1)."""
    text = TfidfLogisticBaseline().fit(claims, targets, label_counts)
    matrix = np.hstack([structured, out_of_fold_text_scores(claims, targets, label_counts, seed)])
    boosters = {}
    for task, values in targets.items():
        known = values != IGNORE
        booster = _boost(matrix[known], values[known], label_counts[task], seed)
        boosters[task] = booster.model_to_string()
    return BoostedPartner(
        PartnerState(
            text=_text_scorer(text),
            boosters=boosters,
            tuned_weights={task: 1.0 for task in targets},
        )
    )


class PartnerFit:
    """`fit_partner`, started before the encoder's fine-tuning. Beside a GPU it runs meanwhile
    in another process, on the CPU cores the fine-tuning leaves idle; on the CPU, where the
    fine-tuning takes every core, it runs when its result is asked for."""

    def __init__(
        self,
        claims: Sequence[Claim],
        structured: np.ndarray,
        targets: dict[str, np.ndarray],
        label_counts: dict[str, int],
        seed: int,
        *,
        beside: bool,
    ) -> None:
        self._arguments = (list(claims), structured, targets, label_counts, seed)
        self._future: Future | None = None
        if beside:
            pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
            self._future = pool.submit(fit_partner, *self._arguments)
            pool.shutdown(wait=False)  # the process ends once the fit is done

    def result(self) -> BoostedPartner:
        """The fitted partner; raises what `fit_partner` raised."""
        if self._future is None:
            return fit_partner(*self._arguments)
        return self._future.result()


def choose_blend(
    tuned: np.ndarray, partner: np.ndarray, targets: np.ndarray
) -> tuple[float, dict[float, float]]:
    """(the tuned model's weight, validation log loss per weight) for one task's labelled rows."""
    labels = np.arange(tuned.shape[1])
    tuned, partner = (p / p.sum(axis=1, keepdims=True) for p in (tuned.astype(float), partner))
    losses = {
        float(weight): float(
            log_loss(targets, weight * tuned + (1 - weight) * partner, labels=labels)
        )
        for weight in BLEND_GRID
    }
    best = min(losses.values())
    # The tuned model alone at equal loss; otherwise the lowest loss, the larger weight on ties.
    chosen = max(weight for weight, loss in losses.items() if loss <= best + 1e-6)
    return chosen, losses
