"""The product's state: the store of predictions, feedback and jobs, the registry, the data dir."""

from claims.store.store import FeedbackConflict, Store, StoreError, UnknownPrediction

__all__ = [
    "FeedbackConflict",
    "Store",
    "StoreError",
    "UnknownPrediction",
    "data_settings",
    "files",
    "job_progress",
    "orm",
    "registry",
    "store",
]
