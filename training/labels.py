"""Label names and indices per task: what a row's label means to every model trained here."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from claims.data.dataset import DataError
from schemas.config import TaskConfig, TaskKind

IGNORE = -100  # a row without a label for a task adds nothing to that task's loss
MAX_CLASS_WEIGHT = 10.0


def resolve_labels(task: TaskConfig, observed: Sequence[str | None]) -> list[str]:
    """The config's label order when it lists labels, else the labels seen, sorted."""
    seen = sorted({label for label in observed if label is not None})
    labels = list(task.labels) or seen
    if task.kind is TaskKind.binary and (len(labels) != 2 or task.positive_label not in labels):
        raise DataError(
            f"task {task.name}: a binary task needs exactly two labels including "
            f"{task.positive_label!r}; the data has {seen}"
        )
    if len(labels) < 2:
        raise DataError(f"task {task.name}: needs at least two labels, the data has {seen}")
    return labels


def label_indices(
    task: str, values: Sequence[str | None], labels: list[str], ids: Sequence[str]
) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    targets = np.full(len(values), IGNORE, dtype=np.int64)
    for row, value in enumerate(values):
        if value is None:
            continue
        if value not in index:
            raise DataError(
                f"claim {ids[row]}: task {task} has label {value!r}, not one of {labels}"
            )
        targets[row] = index[value]
    return targets


def class_weights(targets: np.ndarray, count: int) -> list[float]:
    """Square-rooted balanced weights: rare classes (SIU) count more without swamping the rest."""
    labelled = targets[targets != IGNORE]
    frequency = np.bincount(labelled, minlength=count).astype(float)
    balanced = len(labelled) / (count * np.maximum(frequency, 1.0))
    return [float(w) for w in np.clip(np.sqrt(balanced), 1 / MAX_CLASS_WEIGHT, MAX_CLASS_WEIGHT)]
