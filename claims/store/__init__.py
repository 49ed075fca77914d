"""The product's state: the store of predictions, feedback and jobs, the registry, the data dir."""

from claims.store.review import ReviewHeld
from claims.store.store import FeedbackConflict, Store, StoreError, UnknownPrediction

__all__ = [
    "FeedbackConflict",
    "ReviewHeld",
    "Store",
    "StoreError",
    "UnknownPrediction",
    "data_settings",
    "files",
    "job_progress",
    "orm",
    "registry",
    "review",
    "store",
]
