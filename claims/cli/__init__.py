"""The `claims` command: its root, and the sub-commands for the registry, keys and base models."""

__all__ = ["base_models", "keys", "main", "registry"]
