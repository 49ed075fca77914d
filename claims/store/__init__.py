"""The durable store of predictions, feedback and jobs (SQLite by default, or PostgreSQL)."""

from claims.store.review import ReviewHeld
from claims.store.store import FeedbackConflict, Store, StoreError, UnknownPrediction

__all__ = ["FeedbackConflict", "ReviewHeld", "Store", "StoreError", "UnknownPrediction"]
