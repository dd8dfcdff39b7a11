"""The one Store a command works on, built from the environment's settings."""

from __future__ import annotations

from worker.config import Settings
from worker.engine import aws
from worker.engine.reads import Store


def store() -> Store:
    settings = Settings.from_env()
    return Store.from_settings(aws.dynamodb(settings), settings)
