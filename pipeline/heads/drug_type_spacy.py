"""drug_type head of the spaCy model family: a ``textcat_multilabel`` pipeline trained with ``spacy train``.

- Config: ``pipeline/resources/spacy/textcat_multilabel.cfg`` (kept in the repo); paths, step budget,
  patience, dropout, batch size and seed come from :class:`SpacyParams` as overrides at train time, and
  ``architecture="ensemble"`` swaps in ``spacy.TextCatEnsemble.v2`` (a small tok2vec beside the
  bag-of-words).
- Input: the same model input as the scikit-learn family (:func:`pipeline.heads.drug_type.model_input`:
  de-obfuscated, lower-cased text), cut to ``max_chars`` characters (market titles are short; the cut only
  bounds the cost of the rare very long text).
- Training: train/dev DocBin files in a temporary folder (train from ``records``, dev from
  ``val_records``; never test data); ``model-best`` (macro-F1 on dev) is kept. Per-class thresholds are then
  tuned on the validation scores with the same :func:`~pipeline.heads.drug_type.tune_thresholds` and
  decided with the same :func:`~pipeline.heads.drug_type.decide` as the scikit-learn family.
- Saved as a spaCy folder (``nlp.to_disk``: config + weights, no pickle) with ``thresholds.json``,
  ``params.json`` and the family marker ``head.json``.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.families import write_head_marker
from pipeline.heads.drug_type import (
    Lexicon,
    binarize,
    drug_type_columns,
    load_lexicon_terms,
    model_input,
    validation_thresholds,
)
from pipeline.heads.vendor_context import VendorContextSettings
from pipeline.taxonomy import DRUG_TYPES

TEXTCAT_CONFIG = "textcat_multilabel.cfg"
NER_CONFIG = "ner.cfg"
MODEL_DIR = "model"
SPACY_CONFIG_DIR = Path(__file__).resolve().parent.parent / "resources" / "spacy"


@dataclass(frozen=True)
class SpacyParams(VendorContextSettings):
    """Hyper-parameters of the spaCy drug_type head (params.yaml ``train_spacy.drug_type``)."""

    architecture: Literal["bow", "ensemble"] = "ensemble"  # spacy.TextCatBOW.v3 | spacy.TextCatEnsemble.v2
    ngram_size: int = 2  # bag-of-words n-grams (both architectures)
    width: int = 64  # tok2vec width of the ensemble (unused by bow)
    max_steps: int = 2500
    max_epochs: int = 0  # 0: only max_steps bounds training
    patience: int = 1000  # steps without a better dev score before stopping
    eval_frequency: int = 250
    dropout: float = 0.1
    batch_words: int = 2000  # largest batch, in words (compounding from 100)
    learn_rate: float = 0.001
    max_chars: int = 1000
    fallback_ratio: float = 0.5  # see decide(); the same default as the sklearn family
    rescue_over_non_drug: float = 0.0  # see pipeline.heads.drug_type.decide
    threshold_grid_step: float = 0.05
    default_threshold: float = 0.5
    batch_size: int = 256  # nlp.pipe batch size at scoring
    seed: int = 0


# --- spaCy plumbing shared with pipeline/spans_spacy.py ----------------------------------------------------


def config_path(name: str) -> Path:
    """A spaCy training config kept in ``pipeline/resources/spacy/``."""
    return SPACY_CONFIG_DIR / name


def textcat_model_block(architecture: str, ngram_size: int, width: int) -> dict[str, Any]:
    """The ``[components.textcat_multilabel.model]`` block of ``architecture``."""
    bow = {
        "@architectures": "spacy.TextCatBOW.v3",
        "exclusive_classes": False,
        "length": 262144,
        "ngram_size": ngram_size,
        "no_output_layer": False,
        "nO": None,
    }
    if architecture == "bow":
        return bow
    if architecture != "ensemble":
        raise ValueError(f"unknown textcat architecture {architecture!r}: bow | ensemble")
    tok2vec = {
        "@architectures": "spacy.Tok2Vec.v2",
        "embed": {
            "@architectures": "spacy.MultiHashEmbed.v2",
            "width": width,
            "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
            "rows": [5000, 1000, 2500, 2500],
            "include_static_vectors": False,
        },
        "encode": {
            "@architectures": "spacy.MaxoutWindowEncoder.v2",
            "width": width,
            "depth": 2,
            "window_size": 1,
            "maxout_pieces": 3,
        },
    }
    linear = {k: v for k, v in bow.items() if k not in ("@architectures", "no_output_layer")}
    return {
        "@architectures": "spacy.TextCatEnsemble.v2",
        "nO": None,
        "tok2vec": tok2vec,
        "linear_model": {"@architectures": "spacy.TextCatBOW.v3", **linear, "no_output_layer": False},
    }


def train_pipeline(
    config_name: str,
    train_docs: Iterable[Any],
    dev_docs: Iterable[Any],
    overrides: dict[str, Any],
    edit: dict[tuple[str, ...], Any] | None = None,
) -> Any:
    """Run ``spacy train`` on the repo config ``config_name`` with DocBins of ``train_docs`` and
    ``dev_docs`` written to a temporary folder; returns the loaded ``model-best``.

    ``overrides`` are dotted config keys (as on the ``spacy train`` command line); ``edit`` replaces whole
    config blocks (a key path -> value), which overrides cannot do (e.g. another model architecture).
    """
    import spacy
    from spacy.cli.train import train
    from spacy.tokens import DocBin

    with tempfile.TemporaryDirectory(prefix="narcotag-spacy-") as tmp:
        folder = Path(tmp)
        for name, docs in (("train", train_docs), ("dev", dev_docs)):
            DocBin(docs=docs, store_user_data=False).to_disk(folder / f"{name}.spacy")
        config = spacy.util.load_config(config_path(config_name))
        for keys, value in (edit or {}).items():
            block = config
            for key in keys[:-1]:
                block = block[key]
            block[keys[-1]] = value
        config.to_disk(folder / "config.cfg")
        train(
            folder / "config.cfg",
            folder / "out",
            use_gpu=-1,
            overrides={
                "paths.train": str(folder / "train.spacy"),
                "paths.dev": str(folder / "dev.spacy"),
                **overrides,
            },
        )
        best = folder / "out" / "model-best"
        return spacy.load(best if best.exists() else folder / "out" / "model-last")


def training_overrides(
    *,
    max_steps: int,
    max_epochs: int,
    patience: int,
    eval_frequency: int,
    dropout: float,
    batch_words: int,
    learn_rate: float,
    seed: int,
) -> dict[str, Any]:
    """The ``spacy train`` overrides every model of the family sets from its params."""
    return {
        "training.max_steps": max_steps,
        "training.max_epochs": max_epochs,
        "training.patience": patience,
        "training.eval_frequency": eval_frequency,
        "training.dropout": dropout,
        "training.batcher.size.stop": batch_words,
        "training.optimizer.learn_rate": learn_rate,
        "system.seed": seed,
    }


def textcat_docs(nlp: Any, texts: Sequence[str], y: np.ndarray, labels: Sequence[str]) -> list[Any]:
    """Docs with ``doc.cats`` over every label (0/1), so a label without positives is still learned."""
    docs = []
    for doc, row in zip(nlp.tokenizer.pipe(texts, batch_size=1000), y, strict=True):
        doc.cats = {label: float(v) for label, v in zip(labels, row, strict=True)}
        docs.append(doc)
    return docs


def cats_matrix(nlp: Any, texts: Sequence[str], labels: Sequence[str], batch_size: int) -> np.ndarray:
    """An (n, len(labels)) matrix of ``doc.cats`` in ``labels`` order."""
    scores = np.zeros((len(texts), len(labels)), dtype=np.float32)
    for row, doc in enumerate(nlp.pipe(texts, batch_size=batch_size)):
        scores[row] = [doc.cats.get(label, 0.0) for label in labels]
    return scores


# --- the head --------------------------------------------------------------------------------------------


class SpacyDrugTypeHead:
    """The spaCy family's drug_type head (see module docstring)."""

    name = "drug_type"

    def __init__(self, params: SpacyParams | None = None) -> None:
        self.params = params or SpacyParams()
        self.nlp_: Any = None
        self.thresholds_ = np.full(len(DRUG_TYPES), self.params.default_threshold)
        self.lexicon = Lexicon(load_lexicon_terms())

    def _texts(self, records: pd.DataFrame) -> list[str]:
        return [t[: self.params.max_chars] for t in model_input(records)]

    def fit(
        self,
        records: pd.DataFrame,
        labels: list[list[str]] | None = None,
        val_records: pd.DataFrame | None = None,
        val_labels: list[list[str]] | None = None,
    ) -> SpacyDrugTypeHead:
        """Train on ``records`` with code lists ``labels`` (default: its ``labels`` column); the dev set
        that picks model-best and tunes thresholds is ``val_records`` (without one, model-best is picked on
        the training records and thresholds stay at the default)."""
        import spacy

        p = self.params
        labels = labels if labels is not None else list(records["labels"])
        has_val = val_records is not None and len(val_records) > 0
        if has_val:
            assert val_records is not None
            val_labels = val_labels if val_labels is not None else list(val_records["labels"])
        blank = spacy.blank("en")
        train_docs = textcat_docs(blank, self._texts(records), binarize(labels), DRUG_TYPES)
        if has_val:
            assert val_records is not None and val_labels is not None
            dev_docs = textcat_docs(blank, self._texts(val_records), binarize(val_labels), DRUG_TYPES)
        else:
            dev_docs = train_docs
        model = textcat_model_block(p.architecture, p.ngram_size, p.width)
        self.nlp_ = train_pipeline(
            TEXTCAT_CONFIG,
            train_docs,
            dev_docs,
            training_overrides(
                max_steps=p.max_steps,
                max_epochs=p.max_epochs,
                patience=p.patience,
                eval_frequency=p.eval_frequency,
                dropout=p.dropout,
                batch_words=p.batch_words,
                learn_rate=p.learn_rate,
                seed=p.seed,
            ),
            edit={("components", "textcat_multilabel", "model"): model},
        )
        self.thresholds_ = np.full(len(DRUG_TYPES), p.default_threshold)
        if has_val:
            assert val_records is not None and val_labels is not None
            self.thresholds_ = validation_thresholds(
                self.predict_scores(val_records), val_records, val_labels, self.params
            )
        return self

    def predict_scores(self, records: pd.DataFrame) -> np.ndarray:
        """An (n, 17) matrix of per-code scores in :data:`DRUG_TYPES` order."""
        if self.nlp_ is None:
            raise RuntimeError("SpacyDrugTypeHead is not fitted")
        return cats_matrix(self.nlp_, self._texts(records), DRUG_TYPES, self.params.batch_size)

    def predict(self, records: pd.DataFrame) -> dict[str, list[Any]]:
        """``drug_types``, ``drug_type_scores`` and ``drug_type_evidence`` per record (the same columns as
        :meth:`pipeline.heads.drug_type.DrugTypeHead.predict`)."""
        return drug_type_columns(
            self.predict_scores(records), self.thresholds_, self.params, self.lexicon, records
        )

    def save(self, directory: Path) -> None:
        """Write the spaCy pipeline (``model/``), ``thresholds.json``, ``params.json`` and ``head.json``."""
        if self.nlp_ is None:
            raise RuntimeError("SpacyDrugTypeHead is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.nlp_.to_disk(directory / MODEL_DIR)
        (directory / "thresholds.json").write_text(
            json.dumps(dict(zip(DRUG_TYPES, map(float, self.thresholds_), strict=True)), indent=2)
        )
        (directory / "params.json").write_text(json.dumps(asdict(self.params), indent=2))
        write_head_marker(directory, "spacy")

    @classmethod
    def load(cls, directory: Path) -> SpacyDrugTypeHead:
        """Load a head written by :meth:`save`."""
        import spacy

        directory = Path(directory)
        head = cls(SpacyParams(**json.loads((directory / "params.json").read_text())))
        head.nlp_ = spacy.load(directory / MODEL_DIR)
        thresholds = json.loads((directory / "thresholds.json").read_text())
        head.thresholds_ = np.array([thresholds[c] for c in DRUG_TYPES])
        return head
