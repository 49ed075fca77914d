"""The boosted partner: gradient boosting over the structured fields and the narrative's TF-IDF
scores, which the trainer blends with the tuned model, task by task, where that is better on
the validation claims.

Trees read amounts and counts well and the tuned encoder reads the narrative well; a blend of
the two beats either alone on third-party claims (docs/accuracy-experiments.md). Stored as
JSON: the TF-IDF vocabulary and weights, and LightGBM's own text model format. Nothing is
unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import lightgbm
import numpy as np
from pydantic import BaseModel, Field
from scipy.special import expit, softmax
from sklearn.feature_extraction.text import TfidfVectorizer

TFIDF = {"ngram_range": (1, 2), "sublinear_tf": True}  # the text baseline's, exactly


class TextScorer(BaseModel):
    """Word and word-pair TF-IDF of the narrative, one logistic regression per task."""

    vocabulary: dict[str, int]
    idf: list[float]
    classes: dict[str, list[int]] = Field(description="Label indices each regression saw.")
    coefficients: dict[str, list[list[float]]]
    intercepts: dict[str, list[float]]
    label_counts: dict[str, int]

    @cached_property
    def _vectorizer(self) -> TfidfVectorizer:
        vectorizer = TfidfVectorizer(**TFIDF, vocabulary=self.vocabulary)
        vectorizer.idf_ = np.asarray(self.idf)
        return vectorizer

    @cached_property
    def _regressions(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per task, the weights as arrays (vocabulary by labels) and the intercepts: made once,
        not from the JSON lists at every call, which cost milliseconds per call."""
        return {
            task: (np.asarray(self.coefficients[task]).T.copy(), np.asarray(self.intercepts[task]))
            for task in self.label_counts
        }

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Every task's label probabilities side by side: (texts, sum of label counts)."""
        if not texts:  # a chunk whose every row was rejected
            return np.zeros((0, sum(self.label_counts.values())))
        matrix = self._vectorizer.transform(list(texts))
        columns = []
        for task, count in self.label_counts.items():
            weights, intercepts = self._regressions[task]
            margins = matrix @ weights + intercepts
            seen = (
                np.column_stack([1 - expit(margins[:, 0]), expit(margins[:, 0])])
                if margins.shape[1] == 1
                else softmax(margins, axis=1)
            )
            full = np.zeros((len(texts), count))
            full[:, self.classes[task]] = seen
            columns.append(full)
        return np.hstack(columns)


class PartnerState(BaseModel):
    text: TextScorer
    boosters: dict[str, str] = Field(description="Per task, LightGBM's text model.")
    tuned_weights: dict[str, float] = Field(
        description="Per task, the tuned model's share of the blend: 1 keeps it alone."
    )


class BoostedPartner:
    def __init__(self, state: PartnerState, threads: int = 0) -> None:
        """`threads`: LightGBM's threads per prediction; 0 is every core, 1 suits a process
        that is one of many."""
        self.state = state
        self.threads = threads
        self.boosters = {
            task: lightgbm.Booster(model_str=text) for task, text in state.boosters.items()
        }

    def inputs(self, texts: Sequence[str], structured: np.ndarray) -> np.ndarray:
        """The boosters' features: the structured fields and the narrative's TF-IDF scores."""
        return np.hstack([structured, self.state.text.scores(texts)])

    def predict_proba(self, inputs: np.ndarray) -> dict[str, np.ndarray]:
        return {task: self._predict(task, inputs) for task in self.boosters}

    def _predict(self, task: str, inputs: np.ndarray) -> np.ndarray:
        if not len(inputs):
            return np.zeros((0, self.state.text.label_counts[task]))
        predicted = self.boosters[task].predict(inputs, num_threads=self.threads)
        return np.column_stack([1 - predicted, predicted]) if predicted.ndim == 1 else predicted

    def blend(
        self, tuned: dict[str, np.ndarray], boosted: dict[str, np.ndarray]
    ) -> dict[str, np.ndarray]:
        """The tuned model's probabilities, mixed with the partner's (`predict_proba`) where the
        trainer chose so."""
        mixed = dict(tuned)
        for task, weight in self.state.tuned_weights.items():
            if weight < 1.0:
                mixed[task] = weight * tuned[task] + (1 - weight) * boosted[task]
        return mixed
