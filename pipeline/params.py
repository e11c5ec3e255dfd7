"""``params.yaml`` as typed objects: one section per stage, checked once, unknown keys rejected."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipeline.clean import CleanParams
from pipeline.compare import CompareParams
from pipeline.config import from_dict, read_yaml
from pipeline.evaluate import EvaluateParams
from pipeline.export import ExportParams
from pipeline.prepare import PrepareParams
from pipeline.sample import SampleParams
from pipeline.score import ScoreParams
from pipeline.train import TrainParams
from pipeline.train_spacy import TrainSpacyParams
from pipeline.train_transformer import TrainTransformerParams


@dataclass(frozen=True)
class DataParams:
    """Which data the pipeline runs on: the built-in sample (fresh clone) or the shared real corpus."""

    source: Literal["sample", "shared"] = "sample"


@dataclass(frozen=True)
class Params:
    """All of params.yaml."""

    data: DataParams = field(default_factory=DataParams)
    sample: SampleParams = field(default_factory=SampleParams)
    clean: CleanParams = field(default_factory=CleanParams)
    prepare: PrepareParams = field(default_factory=PrepareParams)
    train: TrainParams = field(default_factory=TrainParams)
    train_spacy: TrainSpacyParams = field(default_factory=TrainSpacyParams)
    train_transformer: TrainTransformerParams = field(default_factory=TrainTransformerParams)
    evaluate: EvaluateParams = field(default_factory=EvaluateParams)
    compare: CompareParams = field(default_factory=CompareParams)
    export: ExportParams = field(default_factory=ExportParams)
    score: ScoreParams = field(default_factory=ScoreParams)


def load_params(path: Path = Path("params.yaml"), overrides: dict | None = None) -> Params:
    """Read and check ``path`` (plus optional ``overrides`` merged per section) into :class:`Params`."""
    data = read_yaml(path) if path.exists() else {}
    for section, values in (overrides or {}).items():
        data.setdefault(section, {}).update(values)
    return from_dict(Params, data)
