"""What a data team would build without the specialist: TF-IDF and logistic regression."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

IGNORE = -100


class TfidfLogisticBaseline:
    """One word and word-pair TF-IDF, one logistic regression per task (scikit-learn defaults)."""

    def __init__(self) -> None:
        self.vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
        self.models: dict[str, LogisticRegression] = {}
        self.label_counts: dict[str, int] = {}

    def fit(
        self, texts: Sequence[str], targets: dict[str, np.ndarray], label_counts: dict[str, int]
    ) -> TfidfLogisticBaseline:
        matrix = self.vectorizer.fit_transform(texts)
        self.label_counts = label_counts
        for task, values in targets.items():
            known = values != IGNORE
            self.models[task] = LogisticRegression(max_iter=2000).fit(matrix[known], values[known])
        return self

    def predict_proba(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        matrix = self.vectorizer.transform(texts)
        probabilities = {}
        for task, model in self.models.items():
            full = np.zeros((len(texts), self.label_counts[task]))
            full[:, model.classes_] = model.predict_proba(matrix)  # labels unseen in training: 0
            probabilities[task] = full
        return probabilities
