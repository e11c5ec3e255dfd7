"""The one head interface every head implements (see ../shared/docs/architecture.md).

A head turns cleaned records (a pandas DataFrame in the schema of :mod:`pipeline.schema`) into output
columns. Rule heads (lexicons, gazetteers, checksum validators) implement the same interface; their
``fit`` learns nothing and returns ``self``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pandas as pd


@runtime_checkable
class Head(Protocol):
    """fit / predict / save / load. ``predict`` returns a dict of equally long columns (lists)."""

    name: str

    def fit(self, records: pd.DataFrame, labels: pd.DataFrame | None = None) -> Head: ...

    def predict(self, records: pd.DataFrame) -> dict[str, list[Any]]: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Head: ...
