"""ad_detector head: does a messenger message offer drugs, or is it something else in the same channel?

Channels that sell drugs also post rules, harm-reduction advice, news about seizures, buyers' questions,
crypto scams and chit-chat; many of these *name* drugs ("police seized 2 tonnes of cocaine", "who has ket in
Leeds?"), so a drug-type model alone turns them into offers. This head decides offer / non-offer; the Tagger
then gives non-offer ads ``drug_types: ["non_drug"]`` (:func:`apply_ad_detection`); listings are not touched.

- Input: the de-obfuscated text (``text_folded``, else ``text``), lower-cased, with handles, links, crypto
  addresses and digits masked (:func:`normalise`), so that the model learns shapes ("00g - 00€") rather than
  one channel's prices or names.
- Features (``params.family``): ``char`` character 2-5-grams (``char_wb``) only; ``char_cues`` the same plus
  cue counts; ``word_cues`` (default: best in ``pipeline.messages.compare_ad_models``) word 1-2-grams plus
  cue counts. Cues (``resources/ad_cues.yaml`` and the drug
  lexicon) count prices, amounts, menu lines (an amount and a price on one line), stock and delivery words,
  calls to order, and on the other side questions, requests, news, harm-reduction, rules, scam and chat words.
- Model: one logistic regression; ``offer_score`` is its probability, ``is_offer`` = score >= threshold.
- Evidence: every cue hit with its span in ``text`` and its polarity (+1 offer, -1 non-offer), for reviewers.
- Saved with skops (no pickle) with its params and cue tables, so scoring runs the training preprocessing.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import pandas as pd
import scipy.sparse as sp
import skops.io as sio
import yaml
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from pipeline.heads.base import load_skops
from pipeline.heads.drug_type import load_lexicon_terms, load_strong_terms
from pipeline.taxonomy import NON_DRUG

FAMILIES: Final = ("char", "char_cues", "word_cues")
_RESOURCE: Final = "ad_cues.yaml"


@dataclass(frozen=True)
class AdDetectorParams:
    """Hyper-parameters of the ad_detector head."""

    family: str = "word_cues"  # one of FAMILIES; the MLflow comparison's pick (data/gold/README_messages.md)
    C: float = 4.0
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    char_max_features: int = 150_000
    word_ngram_max: int = 2
    min_df: int = 2
    cue_weight: float = 1.0
    class_weight: str | None = "balanced"
    threshold: float = 0.5
    max_iter: int = 2000


# --- preprocessing ---------------------------------------------------------------------------------------

_LINK: Final = re.compile(r"(?i)(?:https?://)?(?:www\.)?(?:t|telegram)\.(?:me|dog)/\S+|https?://\S+")
_HANDLE: Final = re.compile(r"(?<![\w.])@[A-Za-z0-9_]{3,}")
_SESSION: Final = re.compile(r"(?<![0-9A-Fa-f])05[0-9a-fA-F]{64}(?![0-9A-Fa-f])")
_ADDRESS: Final = re.compile(r"(?<!\w)(?:bc1|ltc1|0x)?[A-Za-z0-9]{25,}(?!\w)")
_DIGIT: Final = re.compile(r"\d")


def normalise(text: str) -> str:
    """Mask what identifies one channel (handles, links, ids, addresses) and every digit."""
    text = _LINK.sub(" tmelink ", text)
    text = _SESSION.sub(" sessionid ", text)
    text = _HANDLE.sub(" @handle ", text)
    text = _ADDRESS.sub(" cryptoaddr ", text)
    return _DIGIT.sub("0", text.lower())


# --- cues ------------------------------------------------------------------------------------------------


@cache
def _cue_file() -> dict[str, Any]:
    text = resources.files("pipeline.resources").joinpath(_RESOURCE).read_text(encoding="utf-8")
    data: dict[str, Any] = yaml.safe_load(text)
    return data


def load_cues() -> dict[str, Any]:
    """The packaged cue tables: ``{"polarity": {cue: +1|-1}, "cues": {cue: {lang|"any": [regex, ...]}}}``."""
    data = _cue_file()
    return {"polarity": dict(data["polarity"]), "cues": {k: dict(v) for k, v in data["cues"].items()}}


#: Cues computed from other cues or the drug lexicon (not in the YAML): name -> polarity.
DERIVED: Final = {"drug": 1, "drug_strong": 1, "menu_line": 1, "drug_price": 1, "drug_contact": 1}


class CueMatcher:
    """Matches every cue of a cue table (one combined regex) and the drug lexicon (two more)."""

    def __init__(self, table: dict[str, Any]) -> None:
        self.table = table
        self.names = sorted(table["cues"]) + sorted(DERIVED)
        self.polarity = {**table["polarity"], **DERIVED}
        groups = []
        for name in sorted(table["cues"]):
            parts = []
            for lang, fragments in table["cues"][name].items():
                for f in fragments:
                    parts.append(f"(?:{f})" if lang == "any" else rf"(?<!\w)(?:{f})(?!\w)")
            groups.append(f"(?P<{name}>{'|'.join(parts)})")
        self.pattern = re.compile("|".join(groups), re.IGNORECASE)
        drug_terms = {k: v for k, v in load_lexicon_terms().items() if k != NON_DRUG}
        drug = "|".join(f"(?:{t})" for terms in drug_terms.values() for t in terms)
        strong = "|".join(f"(?:{t})" for terms in load_strong_terms().values() for t in terms)
        self.drug = re.compile(rf"(?<![\w])(?:{drug})(?![\w])", re.IGNORECASE)
        self._cache: dict[str, tuple[tuple[tuple[str, Any], ...], ...]] = {}
        self.strong = re.compile(rf"(?<![\w])(?:{strong})(?![\w])", re.IGNORECASE)

    def matches(self, text: str) -> list[dict[str, Any]]:
        """Cue hits ``{"text", "start", "end", "cue", "polarity"}`` in text order (derived cues last).

        The last texts' hits are cached: the features and the evidence of one record scan it once."""
        cached = self._cache.get(text)
        if cached is None:
            cached = tuple(tuple(h.items()) for h in self._scan(text))
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[text] = cached
        return [dict(h) for h in cached]

    def _scan(self, text: str) -> list[dict[str, Any]]:
        hits = [
            {"text": m.group(0), "start": m.start(), "end": m.end(), "cue": m.lastgroup}
            for m in self.pattern.finditer(text)
        ]
        for name, rx in (("drug", self.drug), ("drug_strong", self.strong)):
            hits += [
                {"text": m.group(0), "start": m.start(), "end": m.end(), "cue": name}
                for m in rx.finditer(text)
            ]
        hits += self._menu_lines(text, hits)
        kinds = {h["cue"] for h in hits}
        if "drug" in kinds and "price" in kinds:
            hits.append({"text": "", "start": 0, "end": 0, "cue": "drug_price"})
        if "drug" in kinds and "order_call" in kinds:
            hits.append({"text": "", "start": 0, "end": 0, "cue": "drug_contact"})
        for h in hits:
            h["polarity"] = self.polarity[h["cue"]]
        return hits

    @staticmethod
    def _menu_lines(text: str, hits: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Lines (or " / " segments) holding an amount and a price: the rows of a price menu."""
        out = []
        start = 0
        for line in re.split(r"(\n)", text):
            if line != "\n":
                end = start + len(line)
                inside = {h["cue"] for h in hits if start <= h["start"] < end}
                if {"amount", "price"} <= inside:
                    out.append({"text": line, "start": start, "end": end, "cue": "menu_line"})
            start += len(line)
        return out

    def counts(self, text: str) -> dict[str, int]:
        """Hits per cue name."""
        out: dict[str, int] = {}
        for h in self.matches(text):
            out[h["cue"]] = out.get(h["cue"], 0) + 1
        return out


class CueFeatures(TransformerMixin, BaseEstimator):
    """Per-cue hit counts (log-scaled) as sparse features; stateless. Reads raw texts (see ``_split``)."""

    def __init__(self, table: dict[str, Any] | None = None, weight: float = 1.0) -> None:
        self.table = table
        self.weight = weight

    def fit(self, texts: Any, y: Any = None) -> CueFeatures:
        return self

    def __sklearn_is_fitted__(self) -> bool:  # stateless: always ready
        return True

    def transform(self, texts: Any) -> sp.csr_matrix:
        matcher = _matcher(json.dumps(self.table or load_cues(), sort_keys=True))
        index = {name: i for i, name in enumerate(matcher.names)}
        rows, cols, vals = [], [], []
        for row, text in enumerate(texts):
            for name, n in matcher.counts(text).items():
                rows.append(row)
                cols.append(index[name])
                vals.append(self.weight * float(np.log1p(n)))
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), len(matcher.names)))


@cache
def _matcher(table_json: str) -> CueMatcher:
    return CueMatcher(json.loads(table_json))


# --- the head --------------------------------------------------------------------------------------------

#: Separates the masked model text from the raw text in one input string (the cue features read the raw one).
_SEP: Final = "\x1f"


class _Side(TransformerMixin, BaseEstimator):
    """Selects one side of the ``masked + _SEP + raw`` input strings (0: masked, 1: raw)."""

    def __init__(self, side: int = 0) -> None:
        self.side = side

    def fit(self, texts: Any, y: Any = None) -> _Side:
        return self

    def __sklearn_is_fitted__(self) -> bool:  # stateless: always ready
        return True

    def transform(self, texts: Any) -> list[str]:
        return [t.split(_SEP, 1)[self.side] for t in texts]


class AdDetectorHead:
    """The ad_detector head (see module docstring)."""

    name = "ad_detector"

    def __init__(self, params: AdDetectorParams | None = None, cues: dict[str, Any] | None = None) -> None:
        self.params = params or AdDetectorParams()
        if self.params.family not in FAMILIES:
            raise ValueError(f"ad_detector family {self.params.family!r}: one of {FAMILIES}")
        self.cues = cues or load_cues()
        self.pipeline_: Pipeline | None = None

    def _build(self) -> Pipeline:
        p = self.params
        parts: list[tuple[str, Any]] = []
        if p.family in ("char", "char_cues"):
            char = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(p.char_ngram_min, p.char_ngram_max),
                min_df=p.min_df,
                max_features=p.char_max_features,
                sublinear_tf=True,
                dtype=np.float32,
            )
            parts.append(("char", Pipeline([("side", _Side(0)), ("tfidf", char)])))
        if p.family == "word_cues":
            word = TfidfVectorizer(
                ngram_range=(1, p.word_ngram_max),
                min_df=p.min_df,
                sublinear_tf=True,
                token_pattern=r"(?u)[^\W\d_][\w\-']*|[^\w\s]",
                dtype=np.float32,
            )
            parts.append(("word", Pipeline([("side", _Side(0)), ("tfidf", word)])))
        if p.family in ("char_cues", "word_cues"):
            parts.append(
                ("cues", Pipeline([("side", _Side(1)), ("count", CueFeatures(self.cues, p.cue_weight))]))
            )
        classifier = LogisticRegression(
            C=p.C, solver="liblinear", max_iter=p.max_iter, class_weight=p.class_weight
        )
        return Pipeline([("features", FeatureUnion(parts)), ("classifier", classifier)])

    @staticmethod
    def _inputs(records: pd.DataFrame) -> list[str]:
        column = "text_folded" if "text_folded" in records else "text"
        raw = [str(t) for t in records[column].fillna("")]
        return [normalise(t) + _SEP + t for t in raw]

    def fit(self, records: pd.DataFrame, labels: Any = None) -> AdDetectorHead:
        """Fit on ``records`` with offer labels ``labels`` (bools; default: the ``is_offer`` column)."""
        y = np.asarray(list(labels if labels is not None else records["is_offer"]), dtype=bool).astype(
            np.int8
        )
        if len(set(y.tolist())) < 2:
            raise ValueError("ad_detector needs offers and non-offers to learn from")
        self.pipeline_ = self._build().fit(self._inputs(records), y)
        return self

    def predict_scores(self, records: pd.DataFrame) -> np.ndarray:
        """The probability that each record is an offer."""
        if self.pipeline_ is None:
            raise RuntimeError("AdDetectorHead is not fitted")
        if records.empty:
            return np.zeros(0)
        return np.asarray(self.pipeline_.predict_proba(self._inputs(records)))[:, 1]

    def predict(self, records: pd.DataFrame) -> dict[str, list[Any]]:
        """``is_offer``, ``offer_score`` and ``offer_evidence`` (cue hits with spans in ``text``)."""
        scores = self.predict_scores(records)
        matcher = _matcher(json.dumps(self.cues, sort_keys=True))
        evidence = [
            [h for h in matcher.matches(str(t)) if h["text"]][:40] for t in records["text"].fillna("")
        ]
        return {
            "is_offer": [bool(s >= self.params.threshold) for s in scores],
            "offer_score": [round(float(s), 4) for s in scores],
            "offer_evidence": evidence,
        }

    def save(self, directory: Path) -> None:
        """Write ``model.skops``, ``params.json`` and the cue tables it used (``cues.json``)."""
        if self.pipeline_ is None:
            raise RuntimeError("AdDetectorHead is not fitted")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sio.dump(self.pipeline_, directory / "model.skops")
        (directory / "params.json").write_text(json.dumps(asdict(self.params), indent=2))
        (directory / "cues.json").write_text(json.dumps(self.cues, ensure_ascii=False, indent=1), "utf-8")
        (directory / "head.json").write_text(json.dumps({"head": self.name}))

    @classmethod
    def load(cls, directory: Path) -> AdDetectorHead:
        """Load a head written by :meth:`save` (skops with an explicit list of trusted types)."""
        directory = Path(directory)
        meta = json.loads((directory / "head.json").read_text())
        if meta.get("head") != cls.name:
            raise ValueError(f"{directory} does not hold an ad_detector head")
        params = AdDetectorParams(**json.loads((directory / "params.json").read_text()))
        head = cls(params, json.loads((directory / "cues.json").read_text("utf-8")))
        head.pipeline_ = load_skops(
            directory / "model.skops", {f"{__name__}.CueFeatures", f"{__name__}._Side"}
        )
        return head


def apply_ad_detection(
    kinds: list[str], is_offer: list[bool], drug_types: list[list[str]]
) -> list[list[str]]:
    """Drug types after ad detection: a non-offer *ad* becomes ``["non_drug"]``; listings keep theirs.

    ``kinds`` are the records' ``kind`` ("listing" | "ad"), ``is_offer`` the ad_detector's decisions and
    ``drug_types`` the drug_type head's, all in record order. A new list is returned; the input is unchanged.
    """
    if not len(kinds) == len(is_offer) == len(drug_types):
        raise ValueError("apply_ad_detection: kinds, is_offer and drug_types differ in length")
    return [
        [NON_DRUG] if kind == "ad" and not offer else list(codes)
        for kind, offer, codes in zip(kinds, is_offer, drug_types, strict=True)
    ]


def clear_offer_fields(kinds: list[str], is_offer: list[bool], records: list[dict[str, Any]]) -> None:
    """In labelled records (contract section 6), blank what only an offer has for non-offer ads: the primary
    ``quantity`` (all four fields null; ``quantities`` mentions stay as evidence) and ``ships_from`` /
    ``ships_to``. Changes ``records`` in place."""
    for kind, offer, record in zip(kinds, is_offer, records, strict=True):
        if kind == "ad" and not offer:
            record["quantity"] = dict.fromkeys(record.get("quantity") or {}, None) or {
                "total_grams": None,
                "units": None,
                "dose_mg": None,
                "volume_ml": None,
            }
            record["ships_from"] = []
            record["ships_to"] = []
