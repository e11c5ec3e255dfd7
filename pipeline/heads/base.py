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


def load_skops(path: Path, allowed: set[str]) -> Any:
    """Load a skops file, trusting only the non-standard types in ``allowed`` (plus the numpy and builtin
    types every sklearn pipeline holds); anything else is refused rather than executed."""
    import skops.io as sio

    base = {"numpy.float32", "numpy.int8", "builtins.dict", "sklearn.multiclass._ConstantPredictor"}
    untrusted = sio.get_untrusted_types(file=path)
    unexpected = [t for t in untrusted if t not in allowed | base]
    if unexpected:
        raise ValueError(f"{path} holds unexpected types: {unexpected}")
    return sio.load(path, trusted=untrusted)
