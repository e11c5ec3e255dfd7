"""spaCy models for laundering hints (``textcat_multilabel``) and QUANTITY / ORIGIN spans (``ner``).

Part of the spaCy model family (``train_spacy`` stage). Both learn from:

- **weak labels**: the rule heads (:class:`~pipeline.heads.laundering.LaunderingHead`,
  :class:`~pipeline.heads.quantity.QuantityHead`, :class:`~pipeline.heads.origin.OriginHead`) run over corpus
  texts (the prepared frame's train split, capped at ``corpus_records``). QUANTITY = the amounts the
  quantity head marks ``primary`` (the offer); ORIGIN = the origin head's text evidence with role
  ``from`` (a place named as the place of dispatch);
- **gold**: the *dev half* of the project's gold sets (``data/gold``), split deterministically by a hash of
  each item's id (:func:`gold_half`); the *test half* is only ever measured. The laundering gold gives
  hints directly. The quantity and origin gold give normalised values, not spans, so a gold dev item
  joins the span training data with the rule spans only when the rule's value equals the gold value
  (gold-verified spans); the others are left out rather than trained on spans known to be wrong.

Measurement on the gold test half (:func:`compare_on_gold`), spaCy vs the rule heads on the same items:

- hints: micro-F1 and per-hint F1;
- QUANTITY: the gold holds the primary quantity object, not spans, so the spaCy spans are normalised by the
  rule grammar (``extract_quantities`` over the span texts) and scored by exact match of the object;
- ORIGIN: the gold holds ``ships_from`` codes concluded from field *and* text, so only items without
  structured fields (codes from text alone) are scored: set precision/recall/F1 of codes (spaCy spans ->
  codes by the training evidence's text -> code table, else the field normaliser);
- span agreement with the rule heads (P/R/F1 of exact character spans) is reported too; it measures
  imitation, not accuracy.

The rule heads were developed against the whole gold set, so their figures on the test half are
development figures; the spaCy models never saw the test half.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from pipeline.heads.drug_type_spacy import (
    MODEL_DIR,
    NER_CONFIG,
    TEXTCAT_CONFIG,
    cats_matrix,
    textcat_docs,
    textcat_model_block,
    train_pipeline,
    training_overrides,
)
from pipeline.metrics import multilabel_report, set_prf
from pipeline.taxonomy import LAUNDERING_HINTS, QUANTITY_FIELDS

QUANTITY = "QUANTITY"
ORIGIN = "ORIGIN"
SPAN_LABELS: tuple[str, ...] = (QUANTITY, ORIGIN)
GOLD_SETS: tuple[str, ...] = ("quantity", "origin", "laundering")

#: (start, end, label) character spans of one text
Spans = list[tuple[int, int, str]]


@dataclass(frozen=True)
class SpansParams:
    """Settings of the hints and span models (params.yaml ``train_spacy.spans``)."""

    corpus_records: int = 5000  # corpus texts weakly labelled by the rule heads
    gold_repeat: int = 3  # each gold dev item counts this many times (gold is scarce beside weak labels)
    dev_fraction: float = 0.1  # share of the training examples that picks model-best
    hints_architecture: Literal["bow", "ensemble"] = "ensemble"
    hints_ngram_size: int = 2
    hints_width: int = 64
    hint_threshold: float = 0.5
    hints_max_steps: int = 1500
    ner_max_steps: int = 1500
    patience: int = 600
    eval_frequency: int = 200
    dropout: float = 0.1
    batch_words: int = 2000
    learn_rate: float = 0.001
    max_chars: int = 1000
    batch_size: int = 256
    seed: int = 0


# --- gold sets -------------------------------------------------------------------------------------------


def gold_half(item_id: str) -> Literal["dev", "test"]:
    """The half of a gold item: a hash of its id, so the split is stable as items are added."""
    return "dev" if hashlib.sha1(item_id.encode("utf-8")).digest()[0] % 2 == 0 else "test"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_gold(gold_dir: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """``{set: {"dev": items, "test": items}}`` for the quantity, origin and laundering gold sets (a set
    whose file is missing is empty)."""
    out: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for name in GOLD_SETS:
        path = gold_dir / f"{name}.jsonl"
        items = _read_jsonl(path) if path.exists() else []
        out[name] = {"dev": [], "test": []}
        for item in items:
            out[name][gold_half(str(item["id"]))].append(item)
    return out


def gold_frame(items: list[dict[str, Any]]) -> pd.DataFrame:
    """Gold items as records the rule heads read."""
    return pd.DataFrame(
        {
            "id": [str(i["id"]) for i in items],
            "text": [str(i["text"]) for i in items],
            "title": [i.get("title") for i in items],
            "lang": [i.get("lang") for i in items],
            "ships_from_raw": [i.get("ships_from_raw") for i in items],
            "ships_to_raw": [i.get("ships_to_raw") for i in items],
        }
    )


# --- weak labels from the rule heads -----------------------------------------------------------------------


def rule_hints(records: pd.DataFrame) -> list[list[str]]:
    """The laundering rule head's hints per record."""
    from pipeline.heads.laundering import LaunderingHead

    return [list(h) for h in LaunderingHead().predict(records)["laundering_hints"]]


def rule_span_outputs(records: pd.DataFrame) -> dict[str, list[Any]]:
    """The quantity and origin rule heads' outputs per record: ``spans`` (QUANTITY = primary mentions,
    ORIGIN = ``from`` evidence, each with its ``code``), ``quantity`` and ``ships_from``."""
    from pipeline.heads.origin import OriginHead
    from pipeline.heads.quantity import QuantityHead

    quantity = QuantityHead().predict(records)
    origin = OriginHead().predict(records)
    spans: list[list[dict[str, Any]]] = []
    for mentions, evidence in zip(quantity["quantities"], origin["origin_evidence"], strict=True):
        found = [
            {"start": m["start"], "end": m["end"], "label": QUANTITY, "code": None}
            for m in mentions
            if m.get("primary")
        ]
        found += [
            {"start": ev["start"], "end": ev["end"], "label": ORIGIN, "code": ev["code"]}
            for ev in evidence
            if ev.get("role") == "from"
        ]
        spans.append(found)
    return {"spans": spans, "quantity": quantity["quantity"], "ships_from": origin["ships_from"]}


def _quantity_equal(pred: dict[str, Any], gold: dict[str, Any]) -> bool:
    from pipeline.evaluate import quantity_equal

    return quantity_equal(pred, gold)


def span_examples(
    corpus: pd.DataFrame, gold: dict[str, dict[str, list[dict[str, Any]]]], gold_repeat: int
) -> tuple[list[tuple[str, Spans]], dict[str, str], dict[str, int]]:
    """Training examples ``(text, spans)`` for the span model, the ORIGIN text -> code table learned from
    them, and counts of where the examples came from."""
    examples: list[tuple[str, Spans]] = []
    code_votes: dict[str, Counter[str]] = {}
    counts = {"corpus": 0, "gold_quantity": 0, "gold_origin": 0, "gold_skipped": 0}

    def add(text: str, spans: list[dict[str, Any]], times: int) -> None:
        for span in spans:
            if span["label"] == ORIGIN and span["code"]:
                key = text[span["start"] : span["end"]].lower()
                code_votes.setdefault(key, Counter())[span["code"]] += times
        triples = [(s["start"], s["end"], s["label"]) for s in spans]
        examples.extend([(text, triples)] * times)

    if len(corpus):
        out = rule_span_outputs(corpus)
        for text, spans in zip(corpus["text"].fillna(""), out["spans"], strict=True):
            add(str(text), spans, 1)
            counts["corpus"] += 1
    for name in ("quantity", "origin"):
        items = gold[name]["dev"]
        if not items:
            continue
        out = rule_span_outputs(gold_frame(items))
        for i, item in enumerate(items):
            if name == "quantity":
                ok = _quantity_equal(out["quantity"][i], item["quantity"])
            else:
                ok = set(out["ships_from"][i]) == set(item["ships_from"])
            if ok:
                add(str(item["text"]), out["spans"][i], gold_repeat)
                counts[f"gold_{name}"] += 1
            else:
                counts["gold_skipped"] += 1
    codes = {text: votes.most_common(1)[0][0] for text, votes in code_votes.items()}
    return examples, codes, counts


def hint_examples(
    corpus: pd.DataFrame, gold: dict[str, dict[str, list[dict[str, Any]]]], gold_repeat: int
) -> tuple[list[str], list[list[str]], dict[str, int]]:
    """Training texts and hint lists for the hints model (rule hints on the corpus, gold hints on the
    laundering gold's dev half), with counts."""
    texts = [str(t) for t in corpus["text"].fillna("")] if len(corpus) else []
    hints = rule_hints(corpus) if len(corpus) else []
    counts = {"corpus": len(texts), "corpus_with_hints": sum(1 for h in hints if h), "gold": 0}
    for item in gold["laundering"]["dev"]:
        texts.extend([str(item["text"])] * gold_repeat)
        hints.extend([list(item.get("laundering_hints") or [])] * gold_repeat)
        counts["gold"] += 1
    return texts, hints, counts


def _split_dev(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices of (train, dev): a seeded shuffle, ``fraction`` to dev (at least one when n > 1)."""
    order = np.random.default_rng(seed).permutation(n)
    n_dev = max(1, int(round(n * fraction))) if n > 1 else 0
    return order[n_dev:], order[:n_dev] if n_dev else order


# --- the models ------------------------------------------------------------------------------------------


def _overrides(p: SpansParams, max_steps: int) -> dict[str, Any]:
    return training_overrides(
        max_steps=max_steps,
        max_epochs=0,
        patience=p.patience,
        eval_frequency=p.eval_frequency,
        dropout=p.dropout,
        batch_words=p.batch_words,
        learn_rate=p.learn_rate,
        seed=p.seed,
    )


class SpacyHintsModel:
    """Laundering hints as a ``textcat_multilabel`` over the lower-cased text (ten labels)."""

    name = "laundering_hints"

    def __init__(self, params: SpansParams | None = None) -> None:
        self.params = params or SpansParams()
        self.nlp_: Any = None

    def _texts(self, texts: Sequence[str]) -> list[str]:
        return [t.lower()[: self.params.max_chars] for t in texts]

    def fit(self, texts: Sequence[str], hints: Sequence[Sequence[str]]) -> SpacyHintsModel:
        """Train on ``texts`` with hint lists ``hints`` (a seeded share of them picks model-best)."""
        import spacy

        p = self.params
        y = _binarize(hints, LAUNDERING_HINTS)
        blank = spacy.blank("en")
        docs = textcat_docs(blank, self._texts(texts), y, LAUNDERING_HINTS)
        train_idx, dev_idx = _split_dev(len(docs), p.dev_fraction, p.seed)
        model = textcat_model_block(p.hints_architecture, p.hints_ngram_size, p.hints_width)
        self.nlp_ = train_pipeline(
            TEXTCAT_CONFIG,
            [docs[i] for i in train_idx],
            [docs[i] for i in dev_idx],
            _overrides(p, p.hints_max_steps),
            edit={("components", "textcat_multilabel", "model"): model},
        )
        return self

    def predict_scores(self, texts: Sequence[str]) -> np.ndarray:
        """An (n, 10) matrix of hint scores in :data:`LAUNDERING_HINTS` order."""
        if self.nlp_ is None:
            raise RuntimeError("SpacyHintsModel is not fitted")
        return cats_matrix(self.nlp_, self._texts(texts), LAUNDERING_HINTS, self.params.batch_size)

    def predict(self, texts: Sequence[str]) -> list[list[str]]:
        """The hints whose score reaches ``hint_threshold``, in contract order."""
        scores = self.predict_scores(texts)
        return [
            [h for h, s in zip(LAUNDERING_HINTS, row, strict=True) if s >= self.params.hint_threshold]
            for row in scores
        ]

    def save(self, directory: Path) -> None:
        """Write the spaCy pipeline (``model/``), ``params.json`` and ``head.json``."""
        if self.nlp_ is None:
            raise RuntimeError("SpacyHintsModel is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.nlp_.to_disk(directory / MODEL_DIR)
        (directory / "params.json").write_text(json.dumps(asdict(self.params), indent=2))
        (directory / "head.json").write_text(json.dumps({"head": self.name, "family": "spacy"}) + "\n")

    @classmethod
    def load(cls, directory: Path) -> SpacyHintsModel:
        """Load a model written by :meth:`save`."""
        import spacy

        directory = Path(directory)
        model = cls(SpansParams(**json.loads((directory / "params.json").read_text())))
        model.nlp_ = spacy.load(directory / MODEL_DIR)
        return model


class SpacySpanModel:
    """QUANTITY and ORIGIN spans as an ``ner`` pipeline over the original text (offsets index into it)."""

    name = "spans"

    def __init__(self, params: SpansParams | None = None) -> None:
        self.params = params or SpansParams()
        self.nlp_: Any = None
        self.codes_: dict[str, str] = {}

    def _docs(self, nlp: Any, examples: Sequence[tuple[str, Spans]]) -> list[Any]:
        from spacy.util import filter_spans

        cut = self.params.max_chars
        docs = []
        for text, spans in examples:
            doc = nlp.make_doc(text[:cut])
            found = []
            for start, end, label in spans:
                if end > cut:
                    continue
                # "expand": a span inside a token ("UK" of "UK2UK") marks the whole token
                span = doc.char_span(start, end, label=label, alignment_mode="expand")
                if span is not None:
                    found.append(span)
            doc.ents = filter_spans(found)
            docs.append(doc)
        return docs

    def fit(
        self, examples: Sequence[tuple[str, Spans]], codes: dict[str, str] | None = None
    ) -> SpacySpanModel:
        """Train on ``(text, [(start, end, label)])`` examples; ``codes`` maps lower-cased ORIGIN span texts
        to country codes (kept with the model to normalise predicted spans)."""
        import spacy

        p = self.params
        docs = self._docs(spacy.blank("en"), examples)
        train_idx, dev_idx = _split_dev(len(docs), p.dev_fraction, p.seed)
        self.nlp_ = train_pipeline(
            NER_CONFIG,
            [docs[i] for i in train_idx],
            [docs[i] for i in dev_idx],
            _overrides(p, p.ner_max_steps),
        )
        self.codes_ = dict(codes or {})
        return self

    def predict(self, texts: Sequence[str]) -> list[list[dict[str, Any]]]:
        """Per text, the spans found: ``{"text", "start", "end", "label"}`` (``text == input[start:end]``)."""
        if self.nlp_ is None:
            raise RuntimeError("SpacySpanModel is not fitted")
        cut = self.params.max_chars
        out = []
        for doc in self.nlp_.pipe([t[:cut] for t in texts], batch_size=self.params.batch_size):
            out.append(
                [
                    {"text": e.text, "start": e.start_char, "end": e.end_char, "label": e.label_}
                    for e in doc.ents
                ]
            )
        return out

    def origin_codes(self, spans: list[dict[str, Any]]) -> set[str]:
        """Country codes of the ORIGIN spans: the training table, else the structured-field normaliser."""
        from pipeline.heads.origin import normalise_location_field

        codes: set[str] = set()
        for span in spans:
            if span["label"] != ORIGIN:
                continue
            key = span["text"].lower()
            if key in self.codes_:
                codes.add(self.codes_[key])
            else:
                codes.update(c for c in normalise_location_field(span["text"], "from") if c != "WW")
        return codes

    def quantity(self, spans: list[dict[str, Any]], lang: str | None = None) -> dict[str, Any]:
        """The quantity object the rule grammar reads from the QUANTITY spans alone."""
        from pipeline.heads.quantity import extract_quantities

        text = " ".join(s["text"] for s in spans if s["label"] == QUANTITY)
        if not text:
            return dict.fromkeys(QUANTITY_FIELDS)
        return dict(extract_quantities(text, lang).primary)

    def save(self, directory: Path) -> None:
        """Write the spaCy pipeline (``model/``), ``origin_codes.json``, ``params.json`` and ``head.json``."""
        if self.nlp_ is None:
            raise RuntimeError("SpacySpanModel is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.nlp_.to_disk(directory / MODEL_DIR)
        (directory / "origin_codes.json").write_text(
            json.dumps(self.codes_, ensure_ascii=False, indent=1, sort_keys=True)
        )
        (directory / "params.json").write_text(json.dumps(asdict(self.params), indent=2))
        (directory / "head.json").write_text(json.dumps({"head": self.name, "family": "spacy"}) + "\n")

    @classmethod
    def load(cls, directory: Path) -> SpacySpanModel:
        """Load a model written by :meth:`save`."""
        import spacy

        directory = Path(directory)
        model = cls(SpansParams(**json.loads((directory / "params.json").read_text())))
        model.nlp_ = spacy.load(directory / MODEL_DIR)
        model.codes_ = json.loads((directory / "origin_codes.json").read_text(encoding="utf-8"))
        return model


def _binarize(lists: Sequence[Sequence[str]], classes: Sequence[str]) -> np.ndarray:
    index = {c: i for i, c in enumerate(classes)}
    y = np.zeros((len(lists), len(classes)), dtype=np.int8)
    for row, codes in enumerate(lists):
        for code in codes:
            if code in index:
                y[row, index[code]] = 1
    return y


# --- training and measurement ------------------------------------------------------------------------------


def corpus_sample(frame: pd.DataFrame, limit: int, seed: int) -> pd.DataFrame:
    """Up to ``limit`` records of the frame's train split (a seeded sample; never val or test)."""
    train = frame[frame["split"] == "train"] if "split" in frame else frame.iloc[0:0]
    if len(train) > limit:
        train = train.sample(n=limit, random_state=seed)
    return train.reset_index(drop=True)


def train_span_models(
    params: SpansParams, corpus: pd.DataFrame, gold_dir: Path
) -> tuple[SpacyHintsModel, SpacySpanModel, dict[str, Any]]:
    """Fit the hints and span models on weak labels of ``corpus`` plus the gold dev half; measure both
    against the rule heads on the gold test half. Returns the two models and the facts to log."""
    import time

    gold = load_gold(gold_dir)
    info: dict[str, Any] = {
        "gold_items": {name: {h: len(v) for h, v in halves.items()} for name, halves in gold.items()}
    }
    started = time.perf_counter()
    texts, hints, hint_counts = hint_examples(corpus, gold, params.gold_repeat)
    hints_model = SpacyHintsModel(params).fit(texts, hints)
    info["hints"] = {"examples": hint_counts, "fit_seconds": round(time.perf_counter() - started, 2)}
    started = time.perf_counter()
    examples, codes, span_counts = span_examples(corpus, gold, params.gold_repeat)
    span_model = SpacySpanModel(params).fit(examples, codes)
    info["spans"] = {"examples": span_counts, "fit_seconds": round(time.perf_counter() - started, 2)}
    info["gold_test"] = compare_on_gold(hints_model, span_model, gold)
    return hints_model, span_model, info


def _span_set(spans: list[dict[str, Any]], label: str) -> set[tuple[int, int]]:
    return {(s["start"], s["end"]) for s in spans if s["label"] == label}


def compare_on_gold(
    hints_model: SpacyHintsModel,
    span_model: SpacySpanModel,
    gold: dict[str, dict[str, list[dict[str, Any]]]],
) -> dict[str, Any]:
    """spaCy vs the rule heads on the gold test half (see the module docstring for what each figure is)."""
    out: dict[str, Any] = {}
    items = gold["laundering"]["test"]
    if items:
        frame = gold_frame(items)
        y_true = _binarize([i.get("laundering_hints") or [] for i in items], LAUNDERING_HINTS)
        for name, predicted in (
            ("spacy", hints_model.predict(list(frame["text"]))),
            ("rules", rule_hints(frame)),
        ):
            report = multilabel_report(y_true, _binarize(predicted, LAUNDERING_HINTS), LAUNDERING_HINTS, 1)
            out.setdefault("hints", {})[name] = {
                "micro_f1": report["summary"]["micro_f1"],
                "per_hint_f1": {h: v["f1"] for h, v in report["per_class"].items() if v["support"]},
                "items": len(items),
            }
    items = gold["quantity"]["test"]
    if items:
        frame = gold_frame(items)
        rules = rule_span_outputs(frame)
        spans = span_model.predict(list(frame["text"]))
        langs = [i.get("lang") for i in items]
        spacy_q = [span_model.quantity(s, lang) for s, lang in zip(spans, langs, strict=True)]
        out["quantity"] = {
            "items": len(items),
            "spacy_exact": _share(spacy_q, [i["quantity"] for i in items]),
            "rules_exact": _share(rules["quantity"], [i["quantity"] for i in items]),
            "span_agreement_with_rules": set_prf(
                [_span_set(s, QUANTITY) for s in spans],
                [{(s["start"], s["end"]) for s in r if s["label"] == QUANTITY} for r in rules["spans"]],
            ),
        }
    items = [i for i in gold["origin"]["test"] if not i.get("ships_from_raw") and not i.get("ships_to_raw")]
    if items:
        frame = gold_frame(items)
        rules = rule_span_outputs(frame)
        spans = span_model.predict(list(frame["text"]))
        truth = [set(i["ships_from"]) for i in items]
        spacy_codes = [span_model.origin_codes(s) for s in spans]
        rule_codes = [set(c) for c in rules["ships_from"]]
        out["origin_text_only"] = {
            "items": len(items),
            "spacy": {**set_prf(spacy_codes, truth), "exact_set": _share_sets(spacy_codes, truth)},
            "rules": {**set_prf(rule_codes, truth), "exact_set": _share_sets(rule_codes, truth)},
            "span_agreement_with_rules": set_prf(
                [_span_set(s, ORIGIN) for s in spans],
                [{(s["start"], s["end"]) for s in r if s["label"] == ORIGIN} for r in rules["spans"]],
            ),
        }
    return out


def _share(pred: Sequence[dict[str, Any]], gold: Sequence[dict[str, Any]]) -> float:
    hits = [_quantity_equal(p, g) for p, g in zip(pred, gold, strict=True)]
    return round(sum(hits) / len(hits), 4) if hits else 0.0


def _share_sets(pred: Sequence[set[str]], gold: Sequence[set[str]]) -> float:
    hits = [p == g for p, g in zip(pred, gold, strict=True)]
    return round(sum(hits) / len(hits), 4) if hits else 0.0
