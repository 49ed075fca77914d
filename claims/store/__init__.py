"""The product's state: the store of predictions, feedback and jobs, the registry, the data dir."""

from claims.store.leases import LeaseLost
from claims.store.review import ReviewHeld
from claims.store.store import (
    ActiveJobExists,
    FeedbackConflict,
    JobCapReached,
    JobCaps,
    Store,
    StoreError,
    UnknownPrediction,
    over_caps,
)

__all__ = [
    "ActiveJobExists",
    "FeedbackConflict",
    "JobCapReached",
    "JobCaps",
    "LeaseLost",
    "ReviewHeld",
    "Store",
    "StoreError",
    "UnknownPrediction",
    "data_settings",
    "file_registry",
    "files",
    "job_progress",
    "leases",
    "orm",
    "over_caps",
    "registry",
    "registry_records",
    "review",
    "store",
]
