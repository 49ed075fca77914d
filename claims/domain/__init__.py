"""The insurer's rules: the task config, the decision policy, and claims into triage results."""

__all__ = ["config", "decision", "triage"]
