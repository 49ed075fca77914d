"""Offline work beside the service: backlog scoring (in process or on Ray) and background jobs."""

__all__ = ["jobs", "ray_scoring", "scoring"]
