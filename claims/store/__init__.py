"""The durable store of predictions, feedback and jobs (SQLite by default, or PostgreSQL)."""

from claims.store.store import FeedbackConflict, Store, UnknownPrediction

__all__ = ["FeedbackConflict", "Store", "UnknownPrediction"]
