"""What an insurer's data team would build without the specialist, scored on the same rows.

Each baseline is fitted on the development rows and answers, like the specialist, with a
probability per task and label.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np
import scipy.sparse
import torch
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold
from threadpoolctl import threadpool_limits

from claims.model.features import StructuredFeatures
from claims.model.stack import (
    CHAR_TFIDF,
    MIN_DOCUMENT_FREQUENCY,
    TEXT_REGULARISATION,
    WORD_TFIDF,
)
from schemas.claim import Claim
from training.labels import IGNORE

Targets = dict[str, np.ndarray]  # task -> label index per row, IGNORE where unlabelled
Probabilities = dict[str, np.ndarray]  # task -> (rows, labels)
STACKING_FOLDS = 5
PARALLEL_FOLDS_FROM = 1_000  # rows: below, starting worker processes costs more than it saves


def _full_width(model: Any, probabilities: np.ndarray, rows: int, labels: int) -> np.ndarray:
    """Columns for every label, zero for labels the model never saw in training."""
    full = np.zeros((rows, labels))
    full[:, model.classes_] = probabilities
    return full


class TfidfLogisticBaseline:
    """TF-IDF of the narrative's word 1-2 grams and character 3-5 grams, side by side, and one
    logistic regression per task (balanced class weights): the classical text model."""

    def __init__(self) -> None:
        self.vectorizers = (
            TfidfVectorizer(min_df=MIN_DOCUMENT_FREQUENCY, **WORD_TFIDF),
            TfidfVectorizer(min_df=MIN_DOCUMENT_FREQUENCY, **CHAR_TFIDF),
        )
        self.models: dict[str, LogisticRegression] = {}
        self.label_counts: dict[str, int] = {}

    def _matrix(self, claims: Sequence[Claim], fit: bool = False) -> scipy.sparse.csr_matrix:
        texts = [claim.description for claim in claims]
        parts = [v.fit_transform(texts) if fit else v.transform(texts) for v in self.vectorizers]
        return scipy.sparse.hstack(parts).tocsr()

    def fit(
        self, claims: Sequence[Claim], targets: Targets, label_counts: dict[str, int]
    ) -> TfidfLogisticBaseline:
        matrix = self._matrix(claims, fit=True)
        self.label_counts = label_counts
        for task, values in targets.items():
            known = values != IGNORE
            self.models[task] = LogisticRegression(
                C=TEXT_REGULARISATION, class_weight="balanced", max_iter=2000
            ).fit(matrix[known], values[known])
        return self

    def predict_proba(self, claims: Sequence[Claim]) -> Probabilities:
        matrix = self._matrix(claims)
        return {
            task: _full_width(
                model, model.predict_proba(matrix), len(claims), self.label_counts[task]
            )
            for task, model in self.models.items()
        }


def fit_text_model(
    claims: Sequence[Claim], targets: Targets, label_counts: dict[str, int], seed: int
) -> tuple[TfidfLogisticBaseline, np.ndarray]:
    """The TF-IDF model fitted on every row, and its scores for those rows, each from a model
    of the same recipe that never saw that row (STACKING_FOLDS folds): what a model stacked on
    the text scores is fitted on. The fits are independent, and one logistic regression uses
    one core, so on a large set they run side by side, the largest first."""
    folds = StratifiedKFold(STACKING_FOLDS, shuffle=True, random_state=seed)
    stratify = next(iter(targets.values()))
    splits = list(folds.split(np.zeros(len(claims)), stratify))
    fits = [(claims, targets, None, label_counts)] + [
        (
            [claims[i] for i in fitted_rows],
            {task: values[fitted_rows] for task, values in targets.items()},
            [claims[i] for i in scored_rows],
            label_counts,
        )
        for fitted_rows, scored_rows in splits
    ]
    cores = os.cpu_count() or 1
    jobs = 1 if len(claims) < PARALLEL_FOLDS_FROM else min(len(fits), cores)
    if jobs == 1:
        results = [_fit_or_score(*fit) for fit in fits]
    else:
        # Processes that end with the fit: joblib's reusable workers idle on for five minutes,
        # and a process fitting this beside a GPU cannot end before they do. Each keeps to its
        # share of the cores, as joblib's workers do.
        with ProcessPoolExecutor(
            jobs,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_keep_to_threads,
            initargs=(max(1, cores // jobs),),
        ) as pool:
            futures = [pool.submit(_fit_or_score, *fit) for fit in fits]
            results = [future.result() for future in futures]
    model, *fold_scores = results
    assert isinstance(model, TfidfLogisticBaseline)
    scores = np.zeros((len(claims), sum(label_counts.values())))
    for (_, scored_rows), fold in zip(splits, fold_scores, strict=True):
        assert isinstance(fold, np.ndarray)
        scores[scored_rows] = fold
    return model, scores


def _keep_to_threads(threads: int) -> None:
    """A worker's limit on its numeric libraries' threads; they are loaded by the time it runs,
    as this module imports them."""
    threadpool_limits(threads)


def _fit_or_score(
    fitted: Sequence[Claim],
    targets: Targets,
    scored: Sequence[Claim] | None,
    label_counts: dict[str, int],
) -> TfidfLogisticBaseline | np.ndarray:
    """The model fitted on `fitted`; with `scored`, only its scores of those claims."""
    model = TfidfLogisticBaseline().fit(fitted, targets, label_counts)
    return model if scored is None else _stack(model.predict_proba(scored))


def _stack(probabilities: Probabilities) -> np.ndarray:
    return np.concatenate(list(probabilities.values()), axis=1)


class StructuredBoostingBaseline:
    """Gradient boosting on the structured fields; `with_text` adds out-of-fold TF-IDF scores
    of every task, the classical way to let a tree model read the narrative."""

    def __init__(self, features: StructuredFeatures, with_text: bool, seed: int = 0) -> None:
        self.features = features
        self.with_text = with_text
        self.seed = seed
        self.models: dict[str, HistGradientBoostingClassifier] = {}
        self.text_model: TfidfLogisticBaseline | None = None
        self.label_counts: dict[str, int] = {}

    def _matrix(self, claims: Sequence[Claim], text_scores: np.ndarray | None) -> np.ndarray:
        structured = self.features.transform(claims)
        return structured if text_scores is None else np.hstack([structured, text_scores])

    def fit(
        self, claims: Sequence[Claim], targets: Targets, label_counts: dict[str, int]
    ) -> StructuredBoostingBaseline:
        self.label_counts = label_counts
        text_scores = None
        if self.with_text:
            self.text_model, text_scores = fit_text_model(claims, targets, label_counts, self.seed)
        matrix = self._matrix(claims, text_scores)
        for task, values in targets.items():
            known = values != IGNORE
            self.models[task] = HistGradientBoostingClassifier(
                max_iter=600,
                learning_rate=0.04,
                min_samples_leaf=40,
                l2_regularization=1.0,
                early_stopping=True,
                random_state=self.seed,
            ).fit(matrix[known], values[known])
        return self

    def predict_proba(self, claims: Sequence[Claim]) -> Probabilities:
        text_scores = _stack(self.text_model.predict_proba(claims)) if self.text_model else None
        matrix = self._matrix(claims, text_scores)
        return {
            task: _full_width(
                model, model.predict_proba(matrix), len(claims), self.label_counts[task]
            )
            for task, model in self.models.items()
        }


class RetrievalBaseline:
    """Nearest historical claims by base-model embedding, their labels voted by similarity."""

    def __init__(self, embed: Callable[[Sequence[str]], torch.Tensor], neighbours: int = 25):
        self.embed = embed
        self.neighbours = neighbours

    def fit(
        self, claims: Sequence[Claim], targets: Targets, label_counts: dict[str, int]
    ) -> RetrievalBaseline:
        self.memory = self.embed([claim.description for claim in claims])
        self.targets = targets
        self.label_counts = label_counts
        return self

    def predict_proba(self, claims: Sequence[Claim], chunk: int = 1024) -> Probabilities:
        queries = self.embed([claim.description for claim in claims])
        votes = {task: np.zeros((len(claims), n)) for task, n in self.label_counts.items()}
        k = min(self.neighbours, len(self.memory))
        for start in range(0, len(claims), chunk):
            similarity = queries[start : start + chunk] @ self.memory.T
            top_weights, top_rows = similarity.topk(k, dim=1)
            weights, rows = top_weights.clamp(min=0).numpy(), top_rows.numpy()
            for task, values in self.targets.items():
                labels = values[rows]
                for label in range(self.label_counts[task]):
                    votes[task][start : start + chunk, label] = (weights * (labels == label)).sum(1)
        return {  # add-one smoothing: a label no neighbour has is unlikely, not impossible
            task: (v + 1 / v.shape[1]) / (v.sum(1, keepdims=True) + 1) for task, v in votes.items()
        }
