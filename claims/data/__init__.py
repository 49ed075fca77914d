"""Claims in and out: table formats, streamed files, the labelled data set and the synthetic one."""

__all__ = ["dataset", "streams", "synthetic", "tables"]
