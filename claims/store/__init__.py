"""The durable store of predictions, feedback and jobs (SQLite by default, or PostgreSQL)."""

from claims.store.store import FeedbackConflict, Store, StoreError, UnknownPrediction

__all__ = ["FeedbackConflict", "Store", "StoreError", "UnknownPrediction"]
