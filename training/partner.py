"""Fitting the stack's other members, and its weights per task on the validation split: the
members whose validation answers choose the weights learn from the training split; the ones
served, with those weights, from the training and validation splits (training/trainer.py).

The members are what a data team would build: the TF-IDF text model (the tfidf_logreg
baseline's recipe); gradient boosting over the structured fields and out-of-fold text scores
(the gbm_stacked baseline's recipe, in LightGBM so that it can be stored as text); and a
logistic regression over the same inputs, its regularisation chosen by cross-validated log
loss. The weights are the ones with the lowest validation log loss, a proper score on claims
that no member's training saw.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor

import lightgbm
import numpy as np
from scipy.optimize import minimize
from scipy.special import log_softmax
from sklearn.linear_model import LogisticRegressionCV
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from claims.model.stack import (
    PROBABILITY_FLOOR,
    TUNED,
    BoostedPartner,
    PartnerState,
    TextScorer,
    TextScorerState,
)
from schemas.claim import Claim
from training.baselines import TfidfLogisticBaseline, fit_text_model
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
MAX_STACK_WEIGHT = 5.0
# scikit-learn's C on standardised features, from a scorecard of a few strong fields (a rare
# label's few examples) to nearly every feature (tens of thousands of claims)
LINEAR_STRENGTHS = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
LINEAR_FOLDS = 5


def _text_scorer(model: TfidfLogisticBaseline) -> TextScorer:
    """The fitted scikit-learn text model as stored state: vocabularies and arrays."""
    word, char = model.vectorizers
    arrays = {"word_idf": word.idf_, "char_idf": char.idf_}
    for task, regression in model.models.items():
        arrays[f"coef.{task}"] = np.ascontiguousarray(regression.coef_.T)
        arrays[f"intercept.{task}"] = regression.intercept_
    state = TextScorerState(
        word_vocabulary={term: int(index) for term, index in word.vocabulary_.items()},
        char_vocabulary={term: int(index) for term, index in char.vocabulary_.items()},
        classes={task: m.classes_.tolist() for task, m in model.models.items()},
        label_counts=model.label_counts,
    )
    return TextScorer(state, arrays)


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
    """Fitted on the training split; every task starts with the tuned model alone.

    BLAS keeps to one thread: the members' matrices are too small for more threads to pay for
    their hand-offs (measured in docs/accuracy-experiments.md); the text model's parallel folds
    set their own limits."""
    with threadpool_limits(1, user_api="blas"):
        text_model, text_scores = fit_text_model(claims, targets, label_counts, seed)
        text = _text_scorer(text_model)
        matrix = np.hstack([structured, text_scores])
        boosters = {}
        for task, values in targets.items():
            known = values != IGNORE
            booster = _boost(matrix[known], values[known], label_counts[task], seed)
            boosters[task] = booster.model_to_string()
        partner = BoostedPartner(
            PartnerState(
                text=text.state,
                boosters=boosters,
                stack_weights={task: {TUNED: 1.0} for task in targets},
            ),
            text.arrays,
        )
        _fit_linear(partner, matrix, targets, seed)
        return partner


def _fit_linear(
    partner: BoostedPartner, inputs: np.ndarray, targets: dict[str, np.ndarray], seed: int
) -> None:
    """The linear member: per task an L2 logistic regression on standardised features, its
    strength the one with the lowest log loss over stratified folds. Stored as arrays, with
    the features' training means (what its explanations are measured from) and spreads."""
    raw = partner.linear_features(inputs)
    spread = raw.std(axis=0)
    partner.arrays["linear.center"] = raw.mean(axis=0)
    partner.arrays["linear.scale"] = np.where(spread > 0, spread, 1.0)
    features = partner.standardised(inputs)
    for task, values in targets.items():
        known = values != IGNORE
        rarest = int(np.unique(values[known], return_counts=True)[1].min())
        regression = LogisticRegressionCV(
            Cs=LINEAR_STRENGTHS,
            l1_ratios=(0.0,),
            # every fold holds each label where the labels allow it
            cv=StratifiedKFold(max(2, min(LINEAR_FOLDS, rarest)), shuffle=True, random_state=seed),
            scoring="neg_log_loss",
            max_iter=1000,
            use_legacy_attributes=False,
        ).fit(features[known], values[known])
        partner.arrays[f"linear.coef.{task}"] = np.ascontiguousarray(regression.coef_.T)
        partner.arrays[f"linear.intercept.{task}"] = regression.intercept_
        partner.state.linear_classes[task] = regression.classes_.tolist()
        partner.state.linear_strengths[task] = float(regression.C_)


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


def stack_log_loss(
    members: dict[str, np.ndarray], targets: np.ndarray, weights: dict[str, float]
) -> float:
    """The validation log loss of the members pooled with these weights."""
    logs = _log_probabilities(members)
    pooled = log_softmax(np.tensordot([weights.get(m, 0.0) for m in members], logs, 1), axis=1)
    return float(-pooled[np.arange(len(targets)), targets].mean())


def _log_probabilities(members: dict[str, np.ndarray]) -> np.ndarray:
    """(members, rows, labels), each member's rows renormalised."""
    return np.stack(
        [
            np.log(np.clip(p / p.sum(axis=1, keepdims=True), PROBABILITY_FLOOR, None))
            for p in members.values()
        ]
    )


def fit_stack_weights(members: dict[str, np.ndarray], targets: np.ndarray) -> dict[str, float]:
    """Non-negative weights of the members' log-probabilities that minimise the log loss of
    one task's labelled validation rows (a logarithmic opinion pool: a weight also sets the
    member's temperature). Starts from the first member alone."""
    logs = _log_probabilities(members)
    rows = np.arange(len(targets))
    chosen = logs[:, rows, targets]  # (members, rows)

    def loss_and_gradient(weights: np.ndarray) -> tuple[float, np.ndarray]:
        pooled = log_softmax(np.tensordot(weights, logs, 1), axis=1)
        expected = np.einsum("rl,mrl->mr", np.exp(pooled), logs)  # E_pool[log p_m] per row
        loss = -pooled[rows, targets].mean()
        return float(loss), (expected - chosen).mean(axis=1)

    start = np.zeros(len(members))
    start[0] = 1.0
    result = minimize(
        loss_and_gradient,
        start,
        jac=True,
        method="L-BFGS-B",
        bounds=[(0.0, MAX_STACK_WEIGHT)] * len(members),
    )
    weights = result.x if result.fun <= loss_and_gradient(start)[0] else start
    return {member: round(float(w), 4) for member, w in zip(members, weights, strict=True)}


def fit_stack(
    partner: BoostedPartner,
    tuned: dict[str, np.ndarray],
    texts: Sequence[str],
    structured: np.ndarray,
    targets: Mapping[str, np.ndarray],
) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Sets the partner's stack weights, task by task, to those that minimise the log loss of
    the validation rows labelled for it (`tuned`: the tuned model's calibrated probabilities
    of those claims). Returns the validation probabilities as served, and the weights chosen
    per task."""
    members = {TUNED: tuned, **partner.predict_proba(partner.inputs(texts, structured))}
    notes = {}
    for task, values in targets.items():
        known = values != IGNORE
        if not known.any():
            continue
        labelled = {member: answers[task][known] for member, answers in members.items()}
        truth = values[known]
        weights = fit_stack_weights(labelled, truth)
        partner.state.stack_weights[task] = weights
        alone = ", ".join(
            f"{member} alone {stack_log_loss(labelled, truth, {member: 1.0}):.4f}"
            for member in labelled
        )
        strength = partner.state.linear_strengths.get(task)
        notes[f"stack.{task}"] = (
            "weights "
            + ", ".join(f"{member} {weight:.2f}" for member, weight in weights.items())
            + f": validation log loss {stack_log_loss(labelled, truth, weights):.4f} "
            f"({alone})" + ("" if strength is None else f"; the linear member's C {strength:g}")
        )
    return partner.blend(tuned, {m: a for m, a in members.items() if m != TUNED}), notes
