"""drug_type head: multi-label linear model over word and character n-grams plus a slang lexicon.

- Features: TF-IDF of word 1-2-grams and character 2-5-grams of the de-obfuscated, lower-cased text,
  plus per-code lexicon hit counts (``resources/drug_lexicon.yaml``) so slang unseen in training still
  counts. One logistic regression per code (one-vs-rest): its probability is the code's score.
- Strong names: a substance named unambiguously (``strong`` in the lexicon) lifts its code to
  ``strong_floor``; next to such a name, a code the text does not name is scaled down unless the model is
  near-certain (``unnamed_keep_score``, chosen on out-of-market pairs: ``pipeline/market_pairs.py``).
- Decision: per-class thresholds tuned on a validation split (never on test); ``non_drug`` is exclusive
  (any drug code above its threshold removes it) and the list is never empty (the top code otherwise).
- Evidence: lexicon matches in ``text`` with spans, for reviewers.
- Saved with skops (no pickle) together with its thresholds and lexicon, so training and scoring run the
  same preprocessing.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import re
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp
import skops.io as sio
import yaml
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline

from pipeline.heads.base import load_skops
from pipeline.heads.char_ngrams import CharWbCounter, supports
from pipeline.heads.prior_shift import apply_shift, group_priors, logit_shift, row_shifts
from pipeline.heads.regex_gate import TwinRegex
from pipeline.heads.vendor_context import VendorContextSettings
from pipeline.taxonomy import DRUG_TYPES, NON_DRUG

_NON_DRUG_INDEX = DRUG_TYPES.index(NON_DRUG)
# what an unnamed code's score is multiplied by next to named ones: below the smallest tunable threshold
# (threshold_grid_step 0.05), so it is never decided, while the ranking among such codes is kept
UNNAMED_FACTOR = 0.04
# rows scored at once when estimating a market's mix from a sample (the size of a `narcotag score` chunk)
_SCORING_BLOCK = 10_000


@dataclass(frozen=True)
class DrugTypeParams(VendorContextSettings):
    """Hyper-parameters of the drug_type head (params.yaml ``train.drug_type``)."""

    C: float = 8.0
    word_ngram_max: int = 2
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    char_max_features: int = 300_000
    min_df: int = 2
    lexicon_weight: float = 1.0
    offer_weight: float = 1.0  # offer-shape features (LexiconFeatures): amounts, doses, counts; 0 = left out
    class_weight: str | None = None  # None | "balanced"
    max_iter: int = 300  # liblinear, dual form: features outnumber records, so the dual converges faster
    fallback_ratio: float = 0.0  # see decide(); 0 = nothing above threshold means non_drug
    rescue_over_non_drug: float = 0.0  # see decide(); 0 = off
    strong_floor: float = 0.7
    strong_veto_non_drug: float = 0.5
    # next to a code the text names unambiguously, a drug code it does not name keeps its score only at or
    # above this (else x UNNAMED_FACTOR); 0 = off. "Brown Sugar" MDMA is MDMA, not also heroin.
    unnamed_keep_score: float = 0.0
    # scoring a market: its class mix estimated from its own records (EM) and the scores shifted towards it,
    # this share of the full log-odds shift (pipeline/heads/prior_shift.py); 0 = off. Groups smaller than
    # prior_adaptation_min_records keep their scores.
    prior_adaptation: float = 0.0
    prior_adaptation_min_records: int = 200
    # thresholds tuned on out-of-market scores: each training market (with >= cross_market_min_records
    # train+val records) scored by a head fitted on the other training markets, as `narcotag score` meets a
    # market it has not seen; a code with fewer than cross_market_min_positives there keeps its validation
    # threshold (see DrugTypeHead.fit)
    cross_market_thresholds: bool = False
    cross_market_min_records: int = 200
    cross_market_min_positives: int = 1
    threshold_grid_step: float = 0.05
    default_threshold: float = 0.5
    n_jobs: int = 1


# --- lexicon ---------------------------------------------------------------------------------------------


@cache
def _lexicon_file() -> dict[str, dict[str, list[str]]]:
    text = resources.files("pipeline.resources").joinpath("drug_lexicon.yaml").read_text(encoding="utf-8")
    data: dict[str, dict[str, list[str]]] = yaml.safe_load(text)
    for section in ("terms", "strong"):
        unknown = set(data[section]) - set(DRUG_TYPES)
        if unknown:
            raise ValueError(f"drug_lexicon.yaml {section}: unknown codes {sorted(unknown)}")
    return data


def load_lexicon_terms() -> dict[str, list[str]]:
    """The packaged drug lexicon: code -> regular expressions (slang and names)."""
    return _lexicon_file()["terms"]


def load_strong_terms() -> dict[str, list[str]]:
    """Unambiguous substance names per code (see ``strong`` in drug_lexicon.yaml)."""
    return _lexicon_file()["strong"]


# --- a fast form of the lexicon regex ---------------------------------------------------------------------
#
# Python's ``re`` tries every alternative of an alternation at every word start; with ~1,500 lexicon
# alternatives that was half of the drug_type head's time. The dispatch form groups the alternatives by the
# characters they can start with, behind a one-character lookahead, so a word start tries only the few that
# can match there. Alternatives keep their original relative order inside each group (``re`` takes the first
# alternative that matches, not the longest), and ones whose first character cannot be worked out are in
# every group, so the matches are exactly those of the plain alternation (tests/test_drug_type.py checks).


def split_alternatives(pattern: str) -> list[str]:
    """The top-level ``|`` alternatives of a regular expression (groups, classes and escapes respected)."""
    parts, depth, start, i, in_class = [], 0, 0, 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            i += 2
            continue
        if in_class:
            in_class = ch != "]" or pattern[i - 1] == "["
        elif ch == "[":
            in_class = True
            if pattern[i + 1 : i + 2] == "^":
                i += 1
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "|" and depth == 0:
            parts.append(pattern[start:i])
            start = i + 1
        i += 1
    parts.append(pattern[start:])
    return parts


def first_chars(pattern: str) -> frozenset[str] | None:
    """Lower-cased characters a match of ``pattern`` can start with; ``None`` when any (or unknown)."""
    from re import _parser  # type: ignore[attr-defined]

    try:
        parsed = _parser.parse(pattern, re.IGNORECASE)
    except re.error:
        return None
    chars, nullable = _first_of_sequence(list(parsed))
    return None if chars is None or nullable else frozenset(c.lower() for c in chars)


def _first_of_sequence(items: list[Any]) -> tuple[set[str] | None, bool]:
    """(first characters, whether the sequence can match the empty string) of parsed regex items."""
    from re import _constants as c  # type: ignore[attr-defined]

    out: set[str] = set()
    for op, arg in items:
        if op in (c.AT, c.ASSERT, c.ASSERT_NOT):  # zero-width: what follows decides
            continue
        if op is c.LITERAL:
            out.add(chr(arg))
            return out, False
        if op is c.IN:
            for kind, value in arg:
                if kind is c.LITERAL:
                    out.add(chr(value))
                elif kind is c.RANGE and value[1] - value[0] < 64:
                    out.update(chr(x) for x in range(value[0], value[1] + 1))
                else:
                    return None, False
            return out, False
        if op is c.SUBPATTERN:
            inner, nullable = _first_of_sequence(list(arg[-1]))
        elif op is c.BRANCH:
            inner, nullable = set(), False
            for branch in arg[1]:
                chars, empty = _first_of_sequence(list(branch))
                if chars is None:
                    return None, False
                inner |= chars
                nullable = nullable or empty
        elif op in (c.MAX_REPEAT, c.MIN_REPEAT, c.POSSESSIVE_REPEAT):
            inner, nullable = _first_of_sequence(list(arg[2]))
            nullable = nullable or arg[0] == 0
        else:  # \w, ., back references, ...: could start with anything
            return None, False
        if inner is None:
            return None, False
        out |= inner
        if not nullable:
            return out, False
    return out, True


def dispatch_pattern(terms: dict[str, list[str]]) -> tuple[re.Pattern[str], dict[str, str]]:
    """The lexicon regex in dispatch form, and the map from its group names to codes."""
    alternatives: list[tuple[str, str, frozenset[str] | None]] = [
        (code, alt, first_chars(alt))
        for code, patterns in terms.items()
        for term in patterns
        for alt in split_alternatives(term)
    ]
    keys = sorted({ch for _, _, chars in alternatives if chars is not None for ch in chars})
    group_codes: dict[str, str] = {}
    branches = []

    def bucket(members: list[tuple[str, str]]) -> str:
        runs: list[str] = []
        for code, run in itertools.groupby(members, key=lambda m: m[0]):
            name = f"g{len(group_codes)}"
            group_codes[name] = code
            runs.append(f"(?P<{name}>" + "|".join(f"(?:{alt})" for _, alt in run) + ")")
        return "|".join(runs)

    for key in keys:
        members = [(code, alt) for code, alt, chars in alternatives if chars is None or key in chars]
        branches.append(f"(?={re.escape(key)})(?:{bucket(members)})")
    anything = [(code, alt) for code, alt, chars in alternatives if chars is None]
    if anything:  # positions no key starts: only the alternatives that may start with anything
        others = "".join(re.escape(k) for k in keys)
        branches.append((f"(?![{others}])" if keys else "") + f"(?:{bucket(anything)})")
    body = "|".join(branches)
    return re.compile(r"(?<![\w])(?:" + body + r")(?![\w])", re.IGNORECASE), group_codes


@cache
def _compiled(terms_json: str) -> tuple[re.Pattern[str], dict[str, str]]:
    return dispatch_pattern(json.loads(terms_json))


def plain_pattern(terms: dict[str, list[str]]) -> re.Pattern[str]:
    """The lexicon as one plain alternation, one named group per code (the reference the dispatch form is
    tested against)."""
    alternatives = [
        f"(?P<{code}>{'|'.join(f'(?:{t})' for t in patterns)})" for code, patterns in terms.items()
    ]
    return re.compile(r"(?<![\w])(?:" + "|".join(alternatives) + r")(?![\w])", re.IGNORECASE)


class Lexicon:
    """Matches lexicon terms; one combined regex (dispatch form), so a text is scanned once."""

    def __init__(self, terms: dict[str, list[str]]) -> None:
        self.terms = terms
        self.pattern, self.group_codes = _compiled(json.dumps(terms, sort_keys=True))
        self.search = _twin_of(self.pattern)  # finditer: the same matches, faster on ASCII text

    def code(self, match: re.Match[str]) -> str:
        """The code of a match of :attr:`pattern`."""
        return self.group_codes[match.lastgroup]  # type: ignore[index]

    def matches(self, text: str) -> list[dict[str, Any]]:
        """Every lexicon hit as ``{"text", "start", "end", "code"}``."""
        return [
            {"text": m.group(0), "start": m.start(), "end": m.end(), "code": self.code(m)}
            for m in self.pattern.finditer(text)
        ]


# what an offer of a drug is written like, whatever the drug: amounts, strengths, counts, purity; and what a
# placeholder (custom order, tip, shipping) is written like. A market's strain and press names are new words
# to a model trained elsewhere; these shapes are not. (The "placeholder" cue is a soft feature; the label rule
# of the same name in labels/conflicts.py is strict: anchored at the title start, only when no drug is named.)
OFFER_CUES: dict[str, str] = {
    "mass": r"\d\s*(?:g|gr|grams?|grammes?|kg|kilos?|oz|ounces?|lbs?|qp|hp)\b"
    r"|\b(?:eighth|ounce|half\s*o|quarter|gram|kilo)\b",
    "dose": r"\d\s*(?:mg|ug|mcg|µg|mics?)\b",
    "units": r"\d\s*(?:x|pcs|pieces|pills?|tabs?|tablets?|caps?|capsules?|blotters?|hits?|bars?|seeds?|amps?"
    r"|ampoules?|vials?)\b|\bx\s*\d",
    "volume": r"\d\s*(?:ml|cl|l)\b",
    "purity": r"\d\s*%",
    "placeholder": r"\bcustom\b|\blisting for\b|\bshipping\b|\btip\b|\breship|\binsurance\b"
    r"|\bdo not (?:buy|order)\b|\bpayment\b",
}
OFFER_COLUMNS = (*OFFER_CUES, "no_drug_word")


@cache
def _offer_pattern() -> re.Pattern[str]:
    return re.compile("|".join(f"(?P<{name}>{rx})" for name, rx in OFFER_CUES.items()), re.IGNORECASE)


@cache
def _twin_of(pattern: re.Pattern[str]) -> TwinRegex:
    return TwinRegex(pattern)


class LexiconFeatures(TransformerMixin, BaseEstimator):
    """Per-code lexicon hit counts (log-scaled) as sparse features, then, when ``offer_weight`` > 0, the
    offer-shape indicators :data:`OFFER_COLUMNS` (0 or ``offer_weight``; ``no_drug_word``: no lexicon term
    in the text). Stateless; the text is scanned for lexicon terms once."""

    def __init__(
        self, terms: dict[str, list[str]] | None = None, weight: float = 1.0, offer_weight: float = 0.0
    ) -> None:
        self.terms = terms
        self.weight = weight
        self.offer_weight = offer_weight

    def fit(self, texts: Any, y: Any = None) -> LexiconFeatures:
        return self

    def lexicon(self) -> Lexicon:
        """The lexicon these features count."""
        return Lexicon(self.terms or load_lexicon_terms())

    def transform(self, texts: Any) -> sp.csr_matrix:
        lexicon = self.lexicon()
        texts = list(texts)
        return self.from_hits([[lexicon.code(m) for m in lexicon.pattern.finditer(t)] for t in texts], texts)

    def from_hits(self, hit_codes: list[list[str]], texts: list[str]) -> sp.csr_matrix:
        """The features from the lexicon codes already found in each text (one scan serves the features and
        the evidence spans; :meth:`DrugTypeHead.predict`)."""
        index = {code: i for i, code in enumerate(DRUG_TYPES)}
        # saved before offer_weight existed: skops restores attributes, it does not call __init__
        offer_weight = getattr(self, "offer_weight", 0.0)
        cues = _twin_of(_offer_pattern())
        offer_column = {name: len(DRUG_TYPES) + i for i, name in enumerate(OFFER_COLUMNS)}
        no_drug_word = offer_column["no_drug_word"]
        rows, cols, vals = [], [], []
        for row, (text, codes) in enumerate(zip(texts, hit_codes, strict=True)):
            counts: dict[int, int] = {}
            for code in codes:
                col = index[code]
                counts[col] = counts.get(col, 0) + 1
            for col, n in counts.items():
                rows.append(row)
                cols.append(col)
                vals.append(self.weight * float(np.log1p(n)))
            if offer_weight:
                found = {offer_column[m.lastgroup] for m in cues.finditer(text)}  # type: ignore[index]
                if not counts:
                    found.add(no_drug_word)
                rows.extend([row] * len(found))
                cols.extend(found)
                vals.extend([offer_weight] * len(found))
        width = len(DRUG_TYPES) + (len(OFFER_COLUMNS) if offer_weight else 0)
        return sp.csr_matrix((vals, (rows, cols)), shape=(len(texts), width))


# --- the head --------------------------------------------------------------------------------------------


def binarize(labels: list[list[str]]) -> np.ndarray:
    """Lists of codes -> an (n, 17) 0/1 matrix in :data:`DRUG_TYPES` order."""
    y = np.zeros((len(labels), len(DRUG_TYPES)), dtype=np.int8)
    index = {code: i for i, code in enumerate(DRUG_TYPES)}
    for row, codes in enumerate(labels):
        for code in codes:
            y[row, index[code]] = 1
    return y


def model_input(records: pd.DataFrame) -> list[str]:
    """What the model reads: the de-obfuscated text, lower-cased (the same at training and scoring)."""
    column = "text_folded" if "text_folded" in records else "text"
    return [t.lower() for t in records[column].fillna("")]


class DecisionRule(Protocol):
    """What :func:`drug_type_columns` reads from a head's params: the rescue settings of :func:`decide`."""

    @property
    def fallback_ratio(self) -> float: ...

    @property
    def rescue_over_non_drug(self) -> float: ...


def decide(
    scores: np.ndarray, thresholds: np.ndarray, fallback_ratio: float = 0.0, rescue_over_non_drug: float = 0.0
) -> list[list[str]]:
    """Scores -> code lists: per-class thresholds; non_drug exclusive; never empty
    (:func:`decision_matrix` as lists of codes)."""
    return code_lists(decision_matrix(scores, thresholds, fallback_ratio, rescue_over_non_drug))


def code_lists(chosen: np.ndarray) -> list[list[str]]:
    """An (n, 17) 0/1 matrix -> each row's codes in :data:`DRUG_TYPES` order (:func:`binarize` reversed)."""
    out: list[list[str]] = [[] for _ in range(len(chosen))]
    rows, columns = np.nonzero(chosen)
    for row, column in zip(rows.tolist(), columns.tolist(), strict=True):
        out[row].append(DRUG_TYPES[column])
    return out


def decision_matrix(
    scores: np.ndarray, thresholds: np.ndarray, fallback_ratio: float = 0.0, rescue_over_non_drug: float = 0.0
) -> np.ndarray:
    """Scores -> the (n, 17) boolean matrix of chosen codes: per-class thresholds; non_drug exclusive; never
    empty.

    When no code reaches its threshold, the drug code closest to its threshold (the highest score/threshold
    share) is taken if that share is at least ``fallback_ratio``, or more than ``rescue_over_non_drug`` times
    ``non_drug``'s own share (0 = off): a drug listing from a market that words it differently, whose
    ``non_drug`` score is lower still. Otherwise the record is ``non_drug``: no drug offer was recognised.
    (Always taking the arg-max turned counterfeit sneakers into "cannabis" on markets whose non-drug goods
    the model had not seen; the comparison with ``non_drug`` keeps those, which the model calls non_drug
    more than it calls anything else.)
    """
    above = scores >= thresholds
    drug_mask = np.ones(len(DRUG_TYPES), dtype=bool)
    drug_mask[_NON_DRUG_INDEX] = False
    any_drug = (above & drug_mask).any(axis=1)
    above[any_drug, _NON_DRUG_INDEX] = False
    share = scores / np.maximum(thresholds, 1e-9)
    ratio = np.where(drug_mask, share, -1.0)
    best = ratio.argmax(axis=1)
    best_share = ratio.max(axis=1)
    near = (best_share >= fallback_ratio) & (fallback_ratio > 0)
    non_drug_share = share[:, _NON_DRUG_INDEX]
    over_non_drug = (rescue_over_non_drug > 0) & (best_share > rescue_over_non_drug * non_drug_share)
    rescue = ~any_drug & ~above[:, _NON_DRUG_INDEX] & (near | over_non_drug)
    above[rescue, best[rescue]] = True
    above[~any_drug & ~rescue, _NON_DRUG_INDEX] = True
    return np.asarray(above)


def drug_type_columns(
    scores: np.ndarray,
    thresholds: np.ndarray,
    rule: DecisionRule,
    lexicon: Lexicon,
    records: pd.DataFrame,
    evidence: list[list[dict[str, Any]]] | None = None,
) -> dict[str, list[Any]]:
    """The drug_type output columns every family returns: ``drug_types`` (:func:`decide` with the head's
    ``rule``: its params' ``fallback_ratio`` and ``rescue_over_non_drug``),
    ``drug_type_scores`` (per-code dicts, 4 decimals), ``drug_type_evidence`` (lexicon hits in ``text``;
    pass ``evidence`` when they are already found)."""
    codes = decide(scores, thresholds, rule.fallback_ratio, rule.rescue_over_non_drug)
    rounded = np.round(np.asarray(scores, dtype=np.float64), 4).tolist()
    score_dicts = [dict(zip(DRUG_TYPES, row, strict=True)) for row in rounded]
    if evidence is None:
        evidence = [lexicon.matches(t) for t in records["text"].fillna("")]
    return {"drug_types": codes, "drug_type_scores": score_dicts, "drug_type_evidence": evidence}


class DrugTypeHead:
    """The drug_type head (see module docstring)."""

    name = "drug_type"

    def __init__(self, params: DrugTypeParams | None = None) -> None:
        self.params = params or DrugTypeParams()
        self.pipeline_: Pipeline | None = None
        self.thresholds_ = np.full(len(DRUG_TYPES), self.params.default_threshold)
        # the share of training records per code: the class mix the probabilities carry (None: a head saved
        # before it was kept, which is never prior-adapted)
        self.train_prior_: np.ndarray | None = None
        self.lexicon = Lexicon(load_lexicon_terms())
        self.strong = Lexicon(load_strong_terms())
        # the n-gram counter of the fitted pipeline: built at load, or at the first scoring after fit
        self._char_counter: tuple[Pipeline, CharWbCounter | None] | None = None
        # the out-of-market scores the thresholds were tuned on (fit with cross_market_thresholds; not saved)
        self.cross_market_: tuple[np.ndarray, pd.DataFrame] | None = None

    def _build(self) -> Pipeline:
        p = self.params
        features = FeatureUnion(
            [
                (
                    "word",
                    TfidfVectorizer(
                        ngram_range=(1, p.word_ngram_max),
                        min_df=p.min_df,
                        sublinear_tf=True,
                        token_pattern=r"(?u)\b\w[\w\-]*\b",
                        dtype=np.float32,
                    ),
                ),
                (
                    "char",
                    TfidfVectorizer(
                        analyzer="char_wb",
                        ngram_range=(p.char_ngram_min, p.char_ngram_max),
                        min_df=p.min_df,
                        max_features=p.char_max_features,
                        sublinear_tf=True,
                        dtype=np.float32,
                    ),
                ),
                ("lexicon", LexiconFeatures(self.lexicon.terms, p.lexicon_weight, p.offer_weight)),
            ]
        )
        classifier = OneVsRestClassifier(
            LogisticRegression(
                C=p.C, solver="liblinear", dual=True, max_iter=p.max_iter, class_weight=p.class_weight
            ),
            n_jobs=p.n_jobs,
        )
        return Pipeline([("features", features), ("classifier", classifier)])

    def fit(
        self,
        records: pd.DataFrame,
        labels: list[list[str]] | None = None,
        val_records: pd.DataFrame | None = None,
        val_labels: list[list[str]] | None = None,
    ) -> DrugTypeHead:
        """Fit on ``records`` with code lists ``labels`` (default: its ``labels`` column); tune per-class
        thresholds on the validation set when one is given.

        With ``cross_market_thresholds`` and at least two training markets, the thresholds are tuned on
        out-of-market scores instead (:meth:`cross_market_scores`; kept in ``cross_market_`` for the
        evaluation's scores table): in-market validation scores are higher and surer than the scores of a
        market the model never saw, which is what scoring a new scrape means."""
        labels = labels if labels is not None else list(records["labels"])
        y = binarize(labels)
        # a code without positives gets a constant (zero) predictor from one-vs-rest: the column stays
        self.pipeline_ = self._build().fit(model_input(records), y)
        _slim_vectorizers(self.pipeline_)
        self.train_prior_ = y.mean(axis=0).astype(np.float64)
        self.thresholds_ = np.full(len(DRUG_TYPES), self.params.default_threshold)
        if val_records is not None and len(val_records):
            val_labels = val_labels if val_labels is not None else list(val_records["labels"])
            self.thresholds_ = validation_thresholds(
                self.predict_scores(val_records), val_records, val_labels, self.params
            )
        self.cross_market_ = None
        if self.params.cross_market_thresholds:
            self.cross_market_ = self.cross_market_scores(records, labels, val_records, val_labels)
            if self.cross_market_ is not None:
                scores, scored = self.cross_market_
                self.thresholds_ = cross_market_thresholds(self.thresholds_, scores, scored, self.params)
        return self

    def cross_market_scores(
        self,
        records: pd.DataFrame,
        labels: Sequence[Sequence[str]],
        val_records: pd.DataFrame | None = None,
        val_labels: Sequence[Sequence[str]] | None = None,
    ) -> tuple[np.ndarray, pd.DataFrame] | None:
        """(scores, records with ``labels``): every training market with at least
        ``cross_market_min_records`` records (train and val) scored by a head of the same params fitted on
        the *other* markets' training records, adapted to the scored market's class mix as a new market is;
        None with fewer than two such markets or without ``market_key``."""
        if "market_key" not in records:
            return None
        pool = records.assign(labels=[list(x) for x in labels])
        if val_records is not None and len(val_records):
            val_labels = val_labels if val_labels is not None else list(val_records["labels"])
            pool = pd.concat(
                [pool, val_records.assign(labels=[list(x) for x in val_labels])], ignore_index=True
            )
        sizes = pool["market_key"].astype(str).value_counts()
        markets = sorted(sizes.index[sizes >= self.params.cross_market_min_records])
        if len(markets) < 2:
            return None
        own_market = records["market_key"].astype(str).to_numpy()
        sub_params = dataclasses.replace(self.params, cross_market_thresholds=False)
        scores, scored_parts = [], []
        for market in markets:
            keep = own_market != market
            sub = DrugTypeHead(sub_params).fit(
                records[keep], [list(x) for x, k in zip(labels, keep, strict=True) if k]
            )
            scored = pool[pool["market_key"].astype(str) == market]
            scores.append(sub.predict_scores(scored, groups=[market] * len(scored)))
            scored_parts.append(scored)
        return np.vstack(scores), pd.concat(scored_parts, ignore_index=True)

    def predict_scores(
        self,
        records: pd.DataFrame,
        groups: Sequence[Hashable] | None = None,
        logit_shift: np.ndarray | None = None,
    ) -> np.ndarray:
        """An (n, 17) matrix of per-code scores. With ``groups`` (a market key per record) and
        ``prior_adaptation`` on, each group's scores are first shifted towards its own class mix
        (:meth:`estimate_mixes`); ``logit_shift`` (one row per record, or one for all) gives the shift
        instead."""
        texts = model_input(records)
        hits = self._lexicon_hits(texts)
        raw = self._probabilities(texts, hits)
        if groups is not None and self.adapts_priors:
            shifts = self.shifts_for(self._mixes_from(raw, list(groups)))
            logit_shift = row_shifts(list(groups), shifts, len(DRUG_TYPES))
        return self._finish_scores(raw, texts, logit_shift)

    @property
    def adapts_priors(self) -> bool:
        """Whether this head shifts a market's scores towards its class mix (on, with a training prior)."""
        return self.params.prior_adaptation > 0 and self.train_prior_ is not None

    def estimate_mixes(self, records: pd.DataFrame, groups: Sequence[Hashable]) -> dict[Hashable, np.ndarray]:
        """Per group (market) of ``records`` with at least ``prior_adaptation_min_records`` rows, its class
        mix as EM estimates it from the group's own scores (see :mod:`pipeline.heads.prior_shift`); nothing
        when adaptation is off."""
        if not self.adapts_priors or not len(records):
            return {}
        texts = model_input(records)
        # in blocks the size of a scoring chunk: the sparse features of a whole sample at once would set the
        # scoring process's peak memory
        raw = np.vstack(
            [
                self._probabilities(block, self._lexicon_hits(block))
                for block in (texts[i : i + _SCORING_BLOCK] for i in range(0, len(texts), _SCORING_BLOCK))
            ]
        )
        return self._mixes_from(raw, list(groups))

    def shifts_for(self, mixes: dict[Hashable, np.ndarray]) -> dict[Hashable, np.ndarray]:
        """The damped log-odds shift (``prior_adaptation``) of each market's estimated mix."""
        if not self.adapts_priors:
            return {}
        assert self.train_prior_ is not None
        return {k: logit_shift(m, self.train_prior_, self.params.prior_adaptation) for k, m in mixes.items()}

    def _mixes_from(self, raw: np.ndarray, groups: list[Hashable]) -> dict[Hashable, np.ndarray]:
        """:func:`group_priors` of the model's probabilities ``raw`` (needs :attr:`adapts_priors`)."""
        assert self.train_prior_ is not None
        return group_priors(raw, groups, self.train_prior_, self.params.prior_adaptation_min_records)

    def _lexicon_hits(self, texts: list[str]) -> list[list[re.Match[str]]] | None:
        """The lexicon matches in each model text when the features count the head's own lexicon (always, for
        heads this code saved), else None (the features then scan with theirs)."""
        if self.pipeline_ is None:
            raise RuntimeError("DrugTypeHead is not fitted")
        features = dict(self.pipeline_.named_steps["features"].transformer_list).get("lexicon")
        if (
            not isinstance(features, LexiconFeatures)
            or (features.terms or load_lexicon_terms()) != self.lexicon.terms
        ):
            return None
        search = self.lexicon.search
        return [list(search.finditer(t)) for t in texts]  # spans and groups: see TwinRegex.finditer

    def _probabilities(self, texts: list[str], hits: list[list[re.Match[str]]] | None) -> np.ndarray:
        """What ``pipeline_.predict_proba(texts)`` returns, computed faster: the character n-grams by
        :class:`CharWbCounter` and the lexicon columns from ``hits``; the same numbers (tests compare both
        paths)."""
        assert self.pipeline_ is not None
        union: FeatureUnion = self.pipeline_.named_steps["features"]
        plain_union = union.transformer_weights is None
        if not plain_union or list(self.pipeline_.named_steps) != ["features", "classifier"]:
            return np.asarray(self.pipeline_.predict_proba(texts))
        counter = self._counter()
        parts = []
        for name, transformer in union.transformer_list:
            if name == "char" and counter is not None:
                parts.append(counter.transform(texts))
            elif isinstance(transformer, LexiconFeatures) and hits is not None:
                code = self.lexicon.code
                parts.append(transformer.from_hits([[code(m) for m in found] for found in hits], texts))
            else:
                parts.append(transformer.transform(texts))
        features = sp.hstack(parts).tocsr()
        return np.asarray(self.pipeline_.named_steps["classifier"].predict_proba(features))

    def _finish_scores(self, raw: np.ndarray, texts: list[str], shift: np.ndarray | None) -> np.ndarray:
        """The model's probabilities -> the head's scores: the market's prior shift (if any), then the strong
        names."""
        scores = apply_shift(raw, shift) if shift is not None and np.any(shift) else raw
        return self._apply_strong_names(scores, texts)

    def _counter(self) -> CharWbCounter | None:
        """The vectorised counter of the fitted character vectorizer (None: it cannot reproduce it), built
        once per fitted pipeline."""
        assert self.pipeline_ is not None
        if self._char_counter is None or self._char_counter[0] is not self.pipeline_:
            char = dict(self.pipeline_.named_steps["features"].transformer_list).get("char")
            self._char_counter = (self.pipeline_, CharWbCounter(char) if supports(char) else None)
        return self._char_counter[1]

    def _apply_strong_names(self, scores: np.ndarray, texts: list[str]) -> np.ndarray:
        """Lift codes named unambiguously in the text to ``strong_floor`` unless the model is confident
        the record is no drug offer; with ``unnamed_keep_score`` > 0, the drug codes such a text does not
        name are scaled down (x :data:`UNNAMED_FACTOR`) unless they score at least that much. Multi-drug
        listings name each drug; a second code from slang or n-grams next to a named drug is mostly a
        strain or press name ("Brown Sugar" MDMA)."""
        index = {code: i for i, code in enumerate(DRUG_TYPES)}
        floor, veto = self.params.strong_floor, self.params.strong_veto_non_drug
        keep = self.params.unnamed_keep_score
        # the names are found row by row; the score changes are made on all rows at once (same numbers)
        named = np.zeros(scores.shape, dtype=bool)
        search, code = self.strong.search, self.strong.code
        for row in np.flatnonzero(scores[:, _NON_DRUG_INDEX] < veto):
            for m in search.finditer(texts[row]):
                named[row, index[code(m)]] = True
        scores[named & (scores < floor)] = floor
        if keep > 0:
            low = (scores < keep) & ~named & named.any(axis=1, keepdims=True)
            low[:, _NON_DRUG_INDEX] = False
            scores[low] *= UNNAMED_FACTOR
        return scores

    def predict(self, records: pd.DataFrame, logit_shift: np.ndarray | None = None) -> dict[str, list[Any]]:
        """``drug_types``, ``drug_type_scores`` and ``drug_type_evidence`` per record; ``logit_shift`` (one
        row per record, from :meth:`shifts_for` of its market) adapts the scores to the market's mix."""
        texts = model_input(records)
        hits = self._lexicon_hits(texts)
        scores = self._finish_scores(self._probabilities(texts, hits), texts, logit_shift)
        evidence = self._evidence(records, hits) if hits is not None else None
        return drug_type_columns(scores, self.thresholds_, self.params, self.lexicon, records, evidence)

    def _evidence(self, records: pd.DataFrame, hits: list[list[re.Match[str]]]) -> list[list[dict[str, Any]]]:
        """:meth:`Lexicon.matches` of each ``text``, reusing the model text's matches where they are the same:
        an ASCII text that folding left unchanged is its model text up to case, and the lexicon matches
        ignoring case (same spans; the evidence keeps the original case)."""
        raw = records["text"].fillna("")
        folded = records["text_folded"].fillna("") if "text_folded" in records else raw
        code = self.lexicon.code
        evidence = []
        for text, fold, found in zip(raw, folded, hits, strict=True):
            if fold == text and text.isascii():
                evidence.append(
                    [{"text": text[m.start() : m.end()], "start": m.start(), "end": m.end(), "code": code(m)}
                     for m in found]
                )  # fmt: skip
            else:
                evidence.append(self.lexicon.matches(text))
        return evidence

    def save(self, directory: Path) -> None:
        """Write ``model.skops``, ``thresholds.json``, ``params.json`` and the lexicon it used."""
        if self.pipeline_ is None:
            raise RuntimeError("DrugTypeHead is not fitted")
        directory.mkdir(parents=True, exist_ok=True)
        sio.dump(self.pipeline_, directory / "model.skops")
        (directory / "thresholds.json").write_text(
            json.dumps(dict(zip(DRUG_TYPES, map(float, self.thresholds_), strict=True)), indent=2)
        )
        (directory / "params.json").write_text(json.dumps(asdict(self.params), indent=2))
        if self.train_prior_ is not None:
            prior = dict(zip(DRUG_TYPES, map(float, self.train_prior_), strict=True))
            (directory / "train_prior.json").write_text(json.dumps(prior, indent=2))
        lexicon = {"terms": self.lexicon.terms, "strong": self.strong.terms}
        (directory / "lexicon.json").write_text(json.dumps(lexicon, ensure_ascii=False, indent=1))
        from pipeline.families import write_head_marker

        write_head_marker(directory, "sklearn")

    @classmethod
    def load(cls, directory: Path) -> DrugTypeHead:
        """Load a head written by :meth:`save` (skops with an explicit list of trusted types)."""
        params = DrugTypeParams(**json.loads((directory / "params.json").read_text()))
        head = cls(params)
        lexicon = json.loads((directory / "lexicon.json").read_text(encoding="utf-8"))
        head.lexicon, head.strong = Lexicon(lexicon["terms"]), Lexicon(lexicon["strong"])
        head.pipeline_ = load_skops(directory / "model.skops", {f"{__name__}.LexiconFeatures"})
        thresholds = json.loads((directory / "thresholds.json").read_text())
        head.thresholds_ = np.array([thresholds[c] for c in DRUG_TYPES])
        if (directory / "train_prior.json").exists():
            prior = json.loads((directory / "train_prior.json").read_text())
            head.train_prior_ = np.array([prior[c] for c in DRUG_TYPES], dtype=np.float64)
        head._counter()  # built now: a scoring process that forks workers shares it with them
        return head


def _slim_vectorizers(pipeline: Pipeline) -> None:
    """Drop what scoring never reads before saving: ``stop_words_`` (every n-gram cut by min_df or
    max_features; millions for character n-grams) and numpy ints in ``vocabulary_`` (skops writes each
    one as an array; plain ints serialise ~100x faster)."""
    for _, transformer in pipeline.named_steps["features"].transformer_list:
        if isinstance(transformer, TfidfVectorizer):
            if hasattr(transformer, "stop_words_"):
                del transformer.stop_words_
            transformer.vocabulary_ = {term: int(i) for term, i in transformer.vocabulary_.items()}


def validation_thresholds(
    scores: np.ndarray, val_records: pd.DataFrame, val_labels: Sequence[Sequence[str]], params: Any
) -> np.ndarray:
    """A head's thresholds from its validation scores, as its decisions will see them: tuned on the grid
    of ``params`` (any family's: ``threshold_grid_step``, ``default_threshold``), and re-tuned on the
    vendor-shifted scores when ``params`` turn that on
    (:func:`pipeline.heads.vendor_context.tune_in_context`)."""
    from pipeline.heads.vendor_context import VendorContextRule, record_keys, tune_in_context

    y = binarize([list(x) for x in val_labels])
    return tune_in_context(scores, y, record_keys(val_records), VendorContextRule.of(params), params)


def cross_market_thresholds(
    fallback: np.ndarray, scores: np.ndarray, scored: pd.DataFrame, params: DrugTypeParams
) -> np.ndarray:
    """Thresholds tuned (as :func:`validation_thresholds` tunes them) on out-of-market ``scores`` of the
    records ``scored`` (with ``labels``); a code with fewer than ``cross_market_min_positives`` positives
    among them keeps its ``fallback`` (validation) threshold."""
    labels = [list(x) for x in scored["labels"]]
    tuned = validation_thresholds(scores, scored, labels, params)
    positives = binarize(labels).sum(axis=0)
    return np.where(positives >= max(params.cross_market_min_positives, 1), tuned, fallback)


def tune_thresholds(scores: np.ndarray, y: np.ndarray, params: DrugTypeParams) -> np.ndarray:
    """Per-class threshold maximising F1 on validation; classes absent there keep the default."""
    grid = np.arange(params.threshold_grid_step, 1.0, params.threshold_grid_step)
    thresholds = np.full(y.shape[1], params.default_threshold)
    for k in range(y.shape[1]):
        positives = y[:, k].sum()
        if positives == 0:
            continue
        best_f1, best_t = -1.0, params.default_threshold
        for t in grid:
            pred = scores[:, k] >= t
            tp = float((pred & (y[:, k] == 1)).sum())
            f1 = 2 * tp / (pred.sum() + positives) if (pred.sum() + positives) else 0.0
            if f1 > best_f1 + 1e-9:
                best_f1, best_t = f1, float(t)
        thresholds[k] = best_t
    return thresholds
