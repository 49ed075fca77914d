"""Which of the base model's parameters fine-tuning may change."""

from __future__ import annotations

from peft import LoraConfig, get_peft_model
from torch import nn

from schemas.config import Strategy, TrainingConfig


def prepare_encoder(encoder: nn.Module, strategy: Strategy, settings: TrainingConfig) -> nn.Module:
    """LoRA adds small trainable matrices; last-layers unfreezes the top N transformer layers
    (the lower layers already encode language well); full trains all, or all but the word
    embeddings (`tune_word_embeddings`); head trains none."""
    if strategy is Strategy.lora:
        lora = LoraConfig(
            r=settings.lora_rank,
            lora_alpha=settings.lora_alpha,
            lora_dropout=settings.lora_dropout,
            target_modules=settings.lora_targets,
            bias="none",
        )
        return get_peft_model(encoder, lora)
    for parameter in encoder.parameters():
        parameter.requires_grad = strategy is Strategy.full
    if strategy is Strategy.full and not settings.tune_word_embeddings:
        word_embeddings = encoder.get_input_embeddings()  # type: ignore[operator]  # Hugging Face
        word_embeddings.weight.requires_grad = False
    if strategy is Strategy.last_layers:
        for layer in transformer_layers(encoder)[-settings.last_layers :]:
            for parameter in layer.parameters():
                parameter.requires_grad = True
    return encoder


def transformer_layers(encoder: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks, whatever the architecture calls it."""
    depth = encoder.config.num_hidden_layers  # type: ignore[union-attr]  # a Hugging Face model
    for module in encoder.modules():
        if isinstance(module, nn.ModuleList) and len(module) == depth:
            return module
    raise ValueError(f"{type(encoder).__name__}: no stack of {depth} layers to tune")


def count_parameters(module: nn.Module) -> tuple[int, int]:
    """(trainable, total)"""
    parameters = list(module.parameters())
    return (
        sum(p.numel() for p in parameters if p.requires_grad),
        sum(p.numel() for p in parameters),
    )
