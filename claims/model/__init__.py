"""The model at run time: base encoders, the specialist and its stack, predictors, checkpoints."""

__all__ = [
    "base_models",
    "checkpoint",
    "encoder",
    "features",
    "network",
    "packing",
    "predictor",
    "stack",
    "tokens",
]
