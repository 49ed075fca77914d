"""How a training file maps onto claims and triage tasks, and the recipe that trains on it.

One TOML file per data source; the same model serves every claims file with other columns,
other structured fields and other label sets.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.claim import Claim
from schemas.policy import DecisionPolicy, TaskCondition
from schemas.scoring import Precision

Name = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


class TaskKind(StrEnum):
    multiclass = "multiclass"
    binary = "binary"


class Strategy(StrEnum):
    lora = "lora"
    last_layers = "last-layers"
    full = "full"
    head = "head"


# The encoder's learning rate per strategy when the config names none: few trainable
# parameters (LoRA's) take a larger step than the whole encoder's pretrained weights.
STRATEGY_LEARNING_RATES = {
    Strategy.lora: 5e-4,
    Strategy.last_layers: 1e-4,
    Strategy.full: 5e-5,
    Strategy.head: 5e-5,  # unused: no encoder parameter trains
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TaskConfig(_Strict):
    name: Name
    column: str = Field(min_length=1)
    kind: TaskKind
    labels: dict[str, str] = Field(
        default_factory=dict,
        description="Label -> plain description. Fixes the label set and its order when given; "
        "the base model compares claims with these descriptions when it serves zero-shot.",
    )
    positive_label: str = Field(default="1", description="Binary tasks: the label that flags.")

    @model_validator(mode="after")
    def _binary_labels(self) -> TaskConfig:
        if (
            self.kind is TaskKind.binary
            and self.labels
            and (len(self.labels) != 2 or self.positive_label not in self.labels)
        ):
            raise ValueError(
                f"task {self.name}: a binary task lists exactly two labels, "
                f"one of them the positive_label {self.positive_label!r}"
            )
        return self


class InputConfig(_Strict):
    columns: dict[str, str] = Field(
        default_factory=dict,
        description="Claim field -> column in the file, where their names differ. "
        "Columns not mapped to a claim field become claim attributes under their own name.",
    )
    numeric: list[str] = Field(default_factory=list)
    categorical: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(
        default_factory=list,
        description="Columns never read, e.g. outcomes known only later: not even as attributes.",
    )

    @model_validator(mode="after")
    def _columns_name_claim_fields(self) -> InputConfig:
        unknown = sorted(set(self.columns) - (set(Claim.model_fields) - {"attributes"}))
        if unknown:
            raise ValueError(f"columns: {unknown} are not claim fields")
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise ValueError(f"{both} are listed as both numeric and categorical")
        return self


class SplitConfig(_Strict):
    column: str | None = Field(
        default=None, description="A column that names each row's split; else split by claim id."
    )
    test_value: str = "test"
    test_fraction: float = Field(default=0.2, gt=0.0, lt=1.0)


class TrainingConfig(_Strict):
    strategy: Strategy = Field(
        default=Strategy.full,
        description="What fine-tuning changes: every encoder weight (full), LoRA adapters, "
        "the top layers, or only the heads. docs/accuracy-experiments.md compares them.",
    )
    epochs: int = Field(default=3, ge=1, le=100)
    max_steps: int | None = Field(default=None, ge=1)
    batch_size: int = Field(default=32, ge=1, le=4096)
    learning_rate: float | None = Field(
        default=None, gt=0, description="The encoder's; none: the strategy's own default."
    )
    head_learning_rate: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=0.01, ge=0)
    max_length: int = Field(default=128, ge=8, le=512)
    lora_rank: int = Field(default=16, ge=1)
    lora_alpha: int = Field(default=32, ge=1)
    lora_dropout: float = Field(default=0.05, ge=0, lt=1)
    lora_targets: list[str] | str = Field(
        default="all-linear", description="Module names for LoRA; all-linear fits any encoder."
    )
    last_layers: int = Field(default=2, ge=1)
    tune_word_embeddings: bool = Field(
        default=True,
        description="With the full strategy, tune the base model's word-embedding table too. "
        "Off, the table stays as pre-trained: a step is cheaper where the vocabulary is large "
        "(a multilingual model's word embeddings are most of its parameters), and words the "
        "training claims never use keep their place beside the ones they do.",
    )
    validation_fraction: float = Field(default=0.15, gt=0, lt=0.5)
    patience: int = Field(default=2, ge=1, description="Evaluations without improvement to stop.")
    evaluations_per_epoch: int = Field(default=2, ge=1)
    seed: int = 0
    precision: Precision = Field(
        default="auto",
        description="The arithmetic of fine-tuning's passes; weights and optimiser stay fp32. "
        "auto: bf16 autocast on a GPU and on a CPU that multiplies bf16 natively, else fp32.",
    )
    boosted_partner: bool = Field(
        default=True,
        description="Fit a TF-IDF text model, and gradient boosting and a logistic regression on "
        "the structured fields and text scores, beside the tuned model, and serve the four "
        "stacked per task with the weights that minimise the validation log loss.",
    )
    partner_refit: bool = Field(
        default=True,
        description="Once the stack's weights are chosen on the validation claims, serve text, "
        "boosted and linear members fitted again on the training and validation claims "
        "together, with those weights: the classical members gain the rows the encoder spent "
        "on choosing its epoch and calibration. Off: the members fitted on the training claims "
        "alone serve.",
    )

    @property
    def encoder_learning_rate(self) -> float:
        return self.learning_rate or STRATEGY_LEARNING_RATES[self.strategy]


class RetrainingConfig(_Strict):
    """The gate between a challenger trained on feedback and the champion that serves."""

    tolerance: float = Field(
        default=0.01, ge=0, description="How far any task's primary metric may fall on any slice."
    )
    min_improvement: float = Field(
        default=0.001, ge=0, description="How far one metric must rise for a promotion."
    )
    feedback_holdout_fraction: float = Field(
        default=0.2,
        ge=0,
        lt=1,
        description="Share of corrected claims kept out of training to score the challenger.",
    )
    min_rows: int = Field(
        default=30, ge=1, description="A slice with fewer labelled rows for a task is not gated."
    )


class SpecialistConfig(_Strict):
    base_model: str = Field(
        default="default",
        description="'default' (the packaged all-MiniLM-L6-v2), a name from `claims base-models "
        "list` once installed, or a Hugging Face encoder folder.",
    )
    input: InputConfig = Field(default_factory=InputConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    tasks: list[TaskConfig] = Field(min_length=1)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    policy: DecisionPolicy = Field(default_factory=DecisionPolicy)
    retraining: RetrainingConfig = Field(default_factory=RetrainingConfig)

    def task(self, name: str) -> TaskConfig:
        for task in self.tasks:
            if task.name == name:
                return task
        raise KeyError(name)

    @model_validator(mode="after")
    def _policy_names_known_tasks_and_labels(self) -> SpecialistConfig:
        names = [task.name for task in self.tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"tasks: names must be unique, got {names}")
        for rule in self.policy.routes:
            for condition in rule.when:
                if not isinstance(condition, TaskCondition):
                    continue
                if condition.task not in names:
                    raise ValueError(
                        f"policy: rule {rule.route!r} names unknown task {condition.task!r}"
                    )
                known = self.task(condition.task).labels
                unknown = sorted(set(condition.labels) - set(known)) if known else []
                if unknown:
                    raise ValueError(
                        f"policy: rule {rule.route!r} names labels {unknown} "
                        f"that task {condition.task!r} does not have"
                    )
        return self
