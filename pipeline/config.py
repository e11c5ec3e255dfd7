"""Typed parameters and project paths, loaded and checked once.

Each stage module defines its own frozen dataclass of parameters; :func:`load_params` reads
``params.yaml`` into :class:`Params`, rejecting unknown keys and wrong types with a message that names the
key. Library code receives these objects; it never reads ``params.yaml`` itself.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ParamsError(ValueError):
    """params.yaml (or an override) does not fit the typed parameters."""


@dataclass(frozen=True)
class Paths:
    """Where the project reads and writes, all below one root (the repository by default)."""

    root: Path = field(default_factory=Path.cwd)

    @property
    def raw(self) -> Path:
        return self.root / "data" / "raw"

    @property
    def sample(self) -> Path:
        return self.raw / "sample"

    @property
    def interim(self) -> Path:
        return self.root / "data" / "interim"

    @property
    def processed(self) -> Path:
        return self.root / "data" / "processed"

    @property
    def gold(self) -> Path:
        return self.root / "data" / "gold"

    @property
    def labels(self) -> Path:
        return self.root / "data" / "labels"

    @property
    def models(self) -> Path:
        return self.root / "models"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def scored(self) -> Path:
        return self.root / "data" / "scored"

    @property
    def shared(self) -> Path:
        """The read-only ``shared`` folder beside the checkout (may be absent).

        ``NARCOTAG_SHARED`` wins; else the nearest ``../shared`` of the root or of an ancestor folder, so a
        ``dvc exp run --temp`` copy (under .dvc/tmp/exps/) still finds the corpus beside the real checkout.
        """
        if os.environ.get("NARCOTAG_SHARED"):
            return Path(os.environ["NARCOTAG_SHARED"])
        root = self.root.resolve()
        for folder in (root, *root.parents):
            candidate = folder.parent / "shared"
            if (candidate / "data").is_dir() or (candidate / "spec").is_dir():
                return candidate
        return root.parent / "shared"

    def resolve(self, path: str | Path) -> Path:
        """A params path: ``{shared}/...`` below :attr:`shared`, else relative to the root (or absolute)."""
        text = str(path)
        if text.startswith("{shared}"):
            return self.shared / text.removeprefix("{shared}").lstrip("/")
        p = Path(text)
        return p if p.is_absolute() else self.root / p


def from_dict(cls: type[T], data: Any, where: str = "") -> T:
    """Build dataclass ``cls`` from a mapping, recursively, rejecting unknown keys and wrong types."""
    if not isinstance(data, dict):
        raise ParamsError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    known = {f.name: f for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ParamsError(f"{where or cls.__name__}: unknown key(s) {unknown}; known: {sorted(known)}")
    hints = typing.get_type_hints(cls)
    kwargs = {
        name: _convert(hints[name], value, f"{where}.{name}" if where else name)
        for name, value in data.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as e:  # a missing required key
        raise ParamsError(f"{where or cls.__name__}: {e}") from e


def _convert(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(arg, value, where)
            except ParamsError as e:
                errors.append(str(e))
        raise ParamsError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ParamsError(f"{where}: {value!r} is not one of {list(args)}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)  # type: ignore[arg-type]
    if origin in (list, tuple):
        if not isinstance(value, list | tuple):
            raise ParamsError(f"{where}: expected a list, got {value!r}")
        inner = args[0] if args else Any
        return tuple(_convert(inner, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            raise ParamsError(f"{where}: expected a mapping, got {value!r}")
        kt, vt = args if args else (Any, Any)
        return {_convert(kt, k, where): _convert(vt, v, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{where}: expected text, got {value!r}")
        return value
    return value


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping (empty file -> {})."""
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ParamsError(f"{path}: expected a mapping at top level")
    return data
