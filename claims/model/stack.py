"""The specialist's other members, and the stack that combines them with the tuned encoder.

Per task the served answer is a weighted product of the members' probabilities: the tuned
encoder; TF-IDF of the narrative's words and characters with a logistic regression (what an
insurer's data team would build first); gradient boosting over the structured fields and that
text model's scores; and a logistic regression over the same inputs (the scorecard an SIU team
would build), which holds where a rare label leaves the trees too few examples. The weights are
fitted on the validation answers of members that never saw those claims, so the stack never
fits worse than its best member there; the members then served are fitted again on the
validation claims too (`partner_refit`, docs/accuracy-experiments.md). Stored as JSON
(vocabularies, LightGBM's text model format, the weights) and safetensors (the text and linear
models' arrays). Nothing is unpickled.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import lightgbm
import numpy as np
import scipy.sparse
from pydantic import BaseModel, Field
from safetensors.numpy import load_file, save_file
from scipy.special import expit, log_softmax, softmax
from sklearn.feature_extraction.text import TfidfVectorizer

# The text model's recipe: word 1-2 grams and character 3-5 grams within words, each
# sublinear TF-IDF, side by side (scikit-learn's FeatureUnion of the two).
WORD_TFIDF = {"ngram_range": (1, 2), "sublinear_tf": True}
CHAR_TFIDF = {"analyzer": "char_wb", "ngram_range": (3, 5), "sublinear_tf": True}
MIN_DOCUMENT_FREQUENCY = 2
TEXT_REGULARISATION = 10.0  # scikit-learn's C, with balanced class weights

TUNED, TEXT, BOOSTED, LINEAR = "tuned", "text", "boosted", "linear"
MEMBERS = (TUNED, TEXT, BOOSTED, LINEAR)
MEMBER_DESCRIPTIONS = {
    TUNED: "the fine-tuned encoder and its heads, calibrated",
    TEXT: "TF-IDF words and characters + logistic regression",
    BOOSTED: "LightGBM on the structured fields and the text member's scores",
    LINEAR: "logistic regression on the structured fields and the text member's scores",
}
PROBABILITY_FLOOR = 1e-12
TEXT_SCORE_FLOOR = 1e-6  # the linear member reads the text scores as log-probabilities

Members = dict[str, dict[str, np.ndarray]]  # member -> task -> (claims, labels) probabilities


class TextScorerState(BaseModel):
    """The text model's JSON part; its idf and weights are arrays beside it."""

    word_vocabulary: dict[str, int]
    char_vocabulary: dict[str, int]
    classes: dict[str, list[int]] = Field(description="Label indices each regression saw.")
    label_counts: dict[str, int]


class TextScorer:
    """TF-IDF of the narrative's words and characters, one logistic regression per task."""

    def __init__(self, state: TextScorerState, arrays: dict[str, np.ndarray]) -> None:
        """`arrays`: `word_idf`, `char_idf`, and per task `coef.<task>` (labels seen by
        features) and `intercept.<task>`."""
        self.state = state
        self.arrays = arrays

    @cached_property
    def _vectorizers(self) -> tuple[TfidfVectorizer, TfidfVectorizer]:
        word = TfidfVectorizer(**WORD_TFIDF, vocabulary=self.state.word_vocabulary)
        word.idf_ = self.arrays["word_idf"]
        char = TfidfVectorizer(**CHAR_TFIDF, vocabulary=self.state.char_vocabulary)
        char.idf_ = self.arrays["char_idf"]
        return word, char

    def features(self, texts: Sequence[str]) -> scipy.sparse.csr_matrix:
        word, char = self._vectorizers
        return scipy.sparse.hstack([word.transform(texts), char.transform(texts)]).tocsr()

    def scores(self, texts: Sequence[str]) -> np.ndarray:
        """Every task's label probabilities side by side: (texts, sum of label counts)."""
        counts = self.state.label_counts
        if not texts:  # a chunk whose every row was rejected
            return np.zeros((0, sum(counts.values())))
        matrix = self.features(list(texts))
        columns = []
        for task, count in counts.items():
            margins = matrix @ self.arrays[f"coef.{task}"] + self.arrays[f"intercept.{task}"]
            columns.append(regression_probabilities(margins, self.state.classes[task], count))
        return np.hstack(columns)

    def split(self, scores: np.ndarray) -> dict[str, np.ndarray]:
        """`scores`' columns as each task's probabilities."""
        tasks, start = {}, 0
        for task, count in self.state.label_counts.items():
            tasks[task] = scores[:, start : start + count]
            start += count
        return tasks


class PartnerState(BaseModel):
    """The JSON part of the members beside the tuned encoder, and the stack's weights."""

    text: TextScorerState
    boosters: dict[str, str] = Field(description="Per task, LightGBM's text model.")
    linear_classes: dict[str, list[int]] = Field(
        default_factory=dict,
        description="Per task, the label indices the linear member's regression saw; its "
        "coefficients are arrays beside it. Empty in checkpoints made before it was a member.",
    )
    linear_strengths: dict[str, float] = Field(
        default_factory=dict,
        description="Per task, the inverse L2 strength (scikit-learn's C) its folds chose.",
    )
    stack_weights: dict[str, dict[str, float]] = Field(
        description="Per task, each member's weight in the stack: the served log-probabilities "
        "are the weighted sum of the members', renormalised. {tuned: 1} is the tuned model alone."
    )


class BoostedPartner:
    """The members beside the tuned encoder, and the stack that joins them to it."""

    def __init__(
        self, state: PartnerState, arrays: dict[str, np.ndarray], threads: int = 0
    ) -> None:
        """`threads`: LightGBM's threads per prediction; 0 is every core, 1 suits a process
        that is one of many."""
        self.state = state
        self.arrays = arrays
        self.threads = threads
        self.text = TextScorer(state.text, arrays)
        self.boosters = {
            task: lightgbm.Booster(model_str=text) for task, text in state.boosters.items()
        }

    def save(self, json_path: Path, arrays_path: Path) -> None:
        json_path.write_text(self.state.model_dump_json(), encoding="utf-8")
        save_file({name: np.ascontiguousarray(a) for name, a in self.arrays.items()}, arrays_path)

    @classmethod
    def load(cls, json_path: Path, arrays_path: Path) -> BoostedPartner:
        return cls(PartnerState.model_validate_json(json_path.read_bytes()), load_file(arrays_path))

    def inputs(self, texts: Sequence[str], structured: np.ndarray) -> np.ndarray:
        """The boosters' features: the structured fields and the text model's scores."""
        return np.hstack([structured, self.text.scores(texts)])

    def predict_proba(self, inputs: np.ndarray) -> Members:
        """Each member's probabilities but the tuned encoder's, from `inputs`."""
        text_width = sum(self.state.text.label_counts.values())
        members = {
            TEXT: self.text.split(inputs[:, inputs.shape[1] - text_width :]),
            BOOSTED: {task: self._boosted(task, inputs) for task in self.boosters},
        }
        if self.state.linear_classes:
            features = self.standardised(inputs)  # once for every task
            members[LINEAR] = {
                task: self._linear(task, features) for task in self.state.linear_classes
            }
        return members

    def linear_features(self, inputs: np.ndarray) -> np.ndarray:
        """The linear member's features: the structured fields, and the text scores as
        log-probabilities (a linear model adds evidence in log-odds)."""
        text_width = sum(self.state.text.label_counts.values())
        structured, text = np.hsplit(inputs, [inputs.shape[1] - text_width])
        return np.hstack([structured, np.log(np.clip(text, TEXT_SCORE_FLOOR, None))])

    def standardised(self, inputs: np.ndarray) -> np.ndarray:
        """The linear member's features as its regression reads them: less their training
        means, over their training spreads."""
        centre, scale = self.arrays["linear.center"], self.arrays["linear.scale"]
        return (self.linear_features(inputs) - centre) / scale

    def linear_contributions(self, task: str, inputs: np.ndarray) -> np.ndarray:
        """(claims, labels, features): each feature's share of each label's raw score in the
        linear member, its coefficient times its standardised value, so measured from the
        training mean (a linear model's SHAP values). A
        binary task's one margin counts for label 1 and against label 0; a label the
        regression never saw gets none."""
        coefficients = self.arrays[f"linear.coef.{task}"]  # (features, margins)
        shares = self.standardised(inputs)[:, None, :] * coefficients.T[None, :, :]
        if coefficients.shape[1] == 1:
            shares = np.concatenate([-shares, shares], axis=1)
        full = np.zeros((len(inputs), self.state.text.label_counts[task], inputs.shape[1]))
        full[:, self.state.linear_classes[task]] = shares
        return full

    def _boosted(self, task: str, inputs: np.ndarray) -> np.ndarray:
        if not len(inputs):
            return np.zeros((0, self.state.text.label_counts[task]))
        predicted = np.asarray(self.boosters[task].predict(inputs, num_threads=self.threads))
        return np.column_stack([1 - predicted, predicted]) if predicted.ndim == 1 else predicted

    def _linear(self, task: str, features: np.ndarray) -> np.ndarray:
        """The linear member's probabilities from its standardised features."""
        margins = (
            features @ self.arrays[f"linear.coef.{task}"] + self.arrays[f"linear.intercept.{task}"]
        )
        return regression_probabilities(
            margins, self.state.linear_classes[task], self.state.text.label_counts[task]
        )

    def blend(self, tuned: dict[str, np.ndarray], members: Members) -> dict[str, np.ndarray]:
        """The stack's probabilities from the tuned model's and the other members'."""
        everyone = {TUNED: tuned, **members}
        return {
            task: stack({member: everyone[member][task] for member in weights}, weights)
            for task, weights in self.state.stack_weights.items()
        }


def regression_probabilities(
    margins: np.ndarray, classes: Sequence[int], label_count: int
) -> np.ndarray:
    """A logistic regression's probabilities from its margins (one column: binary), with a
    column for every label, zero for the labels it never saw."""
    seen = (
        np.column_stack([1 - expit(margins[:, 0]), expit(margins[:, 0])])
        if margins.shape[1] == 1
        else softmax(margins, axis=1)
    )
    full = np.zeros((len(margins), label_count))
    full[:, list(classes)] = seen
    return full


def stack(probabilities: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """softmax(sum of weight * log-probability): a weighted geometric pool of the members."""
    pooled = sum(
        weight * np.log(np.clip(probabilities[member], PROBABILITY_FLOOR, None))
        for member, weight in weights.items()
    )
    return np.exp(log_softmax(np.asarray(pooled, dtype=float), axis=1))
