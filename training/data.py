"""Preparing labelled claims for fine-tuning: the splits, the label names, the structured
features and the tokens, each computed once before any model sees them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from claims.data.dataset import DataError, LabelledClaims, hash_fraction
from claims.model.features import StructuredFeatures
from claims.model.predictor import PreparedClaims
from claims.model.tokens import TokenMatrix, to_device, tokenize
from schemas.config import SpecialistConfig
from training.labels import IGNORE, class_weights, label_indices, resolve_labels

VALIDATION_SALT = "validation:"
MIN_DEVELOPMENT_ROWS = 10

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]


@dataclass
class EncodedClaims:
    """A split tokenised once, with its structured features and label indices."""

    claims: LabelledClaims
    tokens: TokenMatrix
    structured: torch.Tensor
    targets: dict[str, torch.Tensor]

    def batch(self, rows: np.ndarray, device: torch.device) -> Batch:
        input_ids, mask = self.tokens.batch(rows)
        index = torch.from_numpy(rows)
        targets = {task: values[index] for task, values in self.targets.items()}
        # only tasks labelled in this batch: asking that of a GPU tensor would wait for the GPU
        targets = {task: values for task, values in targets.items() if (values != IGNORE).any()}
        return (
            to_device(input_ids, device),
            to_device(mask, device),
            to_device(self.structured[index], device),
            {task: to_device(values, device) for task, values in targets.items()},
        )

    def prepared(self) -> PreparedClaims:
        """The split as a predictor's inputs, without tokenising it again."""
        return PreparedClaims(self.tokens, self.structured.numpy())


@dataclass
class TrainingData:
    """Everything fine-tuning needs from the data, and the test rows it must not see."""

    train: EncodedClaims
    validation: EncodedClaims
    test: LabelledClaims
    labels: dict[str, list[str]]
    features: StructuredFeatures
    tokenizer: PreTrainedTokenizerBase
    class_weights: dict[str, list[float]]
    max_length: int

    @property
    def label_counts(self) -> dict[str, int]:
        return {task: len(names) for task, names in self.labels.items()}


def split_validation(
    development: LabelledClaims, fraction: float
) -> tuple[LabelledClaims, LabelledClaims]:
    """(training rows, validation rows). A claim's side follows from its id alone, so the
    settings search scores every candidate on the validation claims its training held out."""
    in_validation = [
        hash_fraction(claim.claim_id, VALIDATION_SALT) < fraction for claim in development.claims
    ]
    train = development.subset(i for i, held in enumerate(in_validation) if not held)
    return train, development.subset(i for i, held in enumerate(in_validation) if held)


def encode_claims(
    split: LabelledClaims,
    tokenizer: PreTrainedTokenizerBase,
    features: StructuredFeatures,
    labels: dict[str, list[str]],
    max_length: int,
) -> EncodedClaims:
    ids = [claim.claim_id for claim in split.claims]
    return EncodedClaims(
        claims=split,
        tokens=tokenize(tokenizer, [c.description for c in split.claims], max_length),
        structured=torch.from_numpy(features.transform(split.claims)),
        targets={
            task: torch.from_numpy(label_indices(task, split.labels[task], names, ids))
            for task, names in labels.items()
        },
    )


def prepare_data(
    config: SpecialistConfig,
    everything: LabelledClaims,
    tokenizer: PreTrainedTokenizerBase,
    data_name: str,
) -> TrainingData:
    """Holds out the config's test rows and a validation split; the features and the class
    weights learn from the training split alone."""
    settings = config.training
    development, test = everything.split()
    if len(development) < MIN_DEVELOPMENT_ROWS:
        raise DataError(f"{data_name}: only {len(development)} rows outside the test split")
    train, validation = split_validation(development, settings.validation_fraction)
    # every label of the development rows: a rare one may fall in the validation split alone
    labels = {t.name: resolve_labels(t, development.labels[t.name]) for t in config.tasks}
    features = StructuredFeatures.fit(train.claims, config.input.numeric, config.input.categorical)
    train_set = encode_claims(train, tokenizer, features, labels, settings.max_length)
    return TrainingData(
        train=train_set,
        validation=encode_claims(validation, tokenizer, features, labels, settings.max_length),
        test=test,
        labels=labels,
        features=features,
        tokenizer=tokenizer,
        class_weights={
            task: class_weights(train_set.targets[task].numpy(), len(names))
            for task, names in labels.items()
        },
        max_length=settings.max_length,
    )
