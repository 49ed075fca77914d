"""Pydantic models shared by the API, the files on disk and training."""
