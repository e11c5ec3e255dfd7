"""A vendor's other listings as context for each of its listings' drug type (a batch-level step).

A listing's title is often all a scrape holds, and many titles name no drug a model knows: a strain name, a
pill's press name, a brand, a vendor's own nickname for a product. The same vendor's other listings in the
same market usually do name it. An analyst reads a shop that way; this module does the same
with the model's own decisions, never with labels:

1. **Profile.** Per vendor of a market, the codes the model decided for the vendor's *claimed* listings
   (those where some code reached its threshold: the model recognised something), and per market the same
   over all its claimed listings (the market's own rate of each code).
2. **Shift.** Each listing's scores move in log-odds by ``shift`` x (logit of the vendor's rate - logit of
   the market's rate). The vendor's rate leaves the listing itself out and is shrunk towards the market's
   rate by ``pseudo_listings`` (a vendor with few listings moves its listings little). A vendor with fewer
   than ``min_listings`` other claimed listings gives no shift. Then :func:`~pipeline.heads.drug_type.decide`
   as usual.
3. **Fill.** A listing that still has no code above its threshold (``non_drug`` by default, not because the
   model recognised a non-drug item) takes the vendor's dominant code when it is on at least ``fill_share``
   of the vendor's other claimed listings.

4. **Thresholds.** The shift moves scores before the per-class thresholds apply, so with
   ``vendor_retune_thresholds`` a head tunes its thresholds on its validation scores as the shift moves them
   (:func:`tune_in_context`; the validation split groups records by vendor, so a validation vendor's other
   listings are all there). The evaluation's rotations re-tune the same way from their scores tables.

The profile comes from each listing's own decision (the unshifted scores), so the step is the same however
often it runs and whatever order the records come in; ``narcotag score`` builds the profiles over the whole
batch in one pass over its output and re-decides in a second (pipeline/score.py), the evaluation does the
same on a held-out market's records (pipeline/families.py). Messenger ads and records without a vendor are
left as they are. The settings were chosen on market pairs (docs/evaluation.md).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pipeline.taxonomy import DRUG_TYPES, NON_DRUG

_NON_DRUG = DRUG_TYPES.index(NON_DRUG)
_RATE_FLOOR = 1e-3  # log-odds stay finite; a code the market never shows gets a bounded push
_EPS = 1e-6


@dataclass(frozen=True)
class VendorContextSettings:
    """The vendor-context settings every drug_type family's params carry (params.yaml ``vendor_*``)."""

    vendor_shift: float = 0.0  # share of the log-odds shift towards the vendor's rate; 0 = off
    vendor_pseudo_listings: float = 5.0
    vendor_min_listings: int = 3
    vendor_fill_share: float = 0.0  # 0 = off
    # thresholds tuned on the validation scores as the vendor shift moves them (the test decisions' scores)
    vendor_retune_thresholds: bool = False


@dataclass(frozen=True)
class VendorContextRule:
    """The settings (params.yaml ``train.drug_type.vendor_*``) and the decision rule they feed."""

    shift: float = 0.0  # share of the vendor's log-odds shift applied; 0 = off
    pseudo_listings: float = 5.0  # shrinkage of a vendor's rate towards its market's
    min_listings: int = 3  # other claimed listings a vendor needs before its profile counts
    fill_share: float = 0.0  # an unclaimed listing takes the vendor's code at this share; 0 = off
    fallback_ratio: float = 0.0  # the head's decide() settings
    rescue_over_non_drug: float = 0.0
    retune_thresholds: bool = False  # tune thresholds on the shifted validation scores (tune_in_context)

    @property
    def active(self) -> bool:
        return self.shift > 0 or self.fill_share > 0

    @classmethod
    def of(cls, params: Any) -> VendorContextRule:
        """The rule a head's params (or the compare stage's tuning) describe; off for params without it."""
        return cls(
            shift=float(getattr(params, "vendor_shift", 0.0)),
            pseudo_listings=float(getattr(params, "vendor_pseudo_listings", 5.0)),
            min_listings=int(getattr(params, "vendor_min_listings", 3)),
            fill_share=float(getattr(params, "vendor_fill_share", 0.0)),
            fallback_ratio=float(getattr(params, "fallback_ratio", 0.0)),
            rescue_over_non_drug=float(getattr(params, "rescue_over_non_drug", 0.0)),
            retune_thresholds=bool(getattr(params, "vendor_retune_thresholds", False)),
        )


def own_decisions(
    scores: np.ndarray, thresholds: np.ndarray, rule: VendorContextRule
) -> tuple[np.ndarray, np.ndarray]:
    """(claimed, codes): whether some code reaches its threshold, and the 0/1 codes a claimed listing was
    given (zeros for an unclaimed one), from the listing's own scores."""
    from pipeline.heads.drug_type import decision_matrix

    scores = np.asarray(scores, dtype=np.float64)
    claimed: np.ndarray = np.asarray((scores >= thresholds).any(axis=1))
    codes = decision_matrix(scores, thresholds, rule.fallback_ratio, rule.rescue_over_non_drug)
    return claimed, (codes & claimed[:, None]).astype(np.int8)


class VendorProfiles:
    """Per (market, vendor) and per market: how many claimed listings, and how many got each code.

    ``add`` the records (in any number of calls), then ``decide`` them (in any number of calls). ``keys``
    hold one ``(market, vendor)`` tuple per record, or None for a record the step leaves alone.
    """

    def __init__(self, thresholds: np.ndarray, rule: VendorContextRule) -> None:
        self.thresholds = np.asarray(thresholds, dtype=np.float64)
        self.rule = rule
        self.vendors: dict[Hashable, np.ndarray] = {}  # key -> [claimed listings, count of each code...]
        self.markets: dict[Hashable, np.ndarray] = {}

    def add(self, keys: Sequence[tuple[Hashable, Hashable] | None], scores: np.ndarray) -> None:
        """Count the claimed listings of ``keys`` (rows of ``scores``) into their vendor's and market's
        profiles."""
        rows = [i for i, key in enumerate(keys) if key is not None]
        if not rows:
            return
        claimed, codes = own_decisions(np.asarray(scores)[rows], self.thresholds, self.rule)
        counts = np.hstack([claimed[:, None].astype(np.float64), codes.astype(np.float64)])
        for table, part in ((self.vendors, lambda k: k), (self.markets, lambda k: k[0])):
            labels, uniques = pd.factorize(pd.Series([part(keys[i]) for i in rows], dtype=object))
            sums = np.zeros((len(uniques), counts.shape[1]))
            np.add.at(sums, labels, counts)
            for j, key in enumerate(uniques):
                table[key] = table.get(key, 0.0) + sums[j]

    def _context(
        self, keys: Sequence[tuple[Hashable, Hashable] | None], scores: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any] | None]]:
        """(log-odds shift per record and code, the code a record would be filled with or -1, the info of
        records whose vendor gives context)."""
        rule = self.rule
        n, k = scores.shape
        shift = np.zeros((n, k))
        fill = np.full(n, -1)
        info: list[dict[str, Any] | None] = [None] * n
        rows = [i for i, key in enumerate(keys) if key is not None and key in self.vendors]
        if not rows:
            return shift, fill, info
        claimed, codes = own_decisions(scores[rows], self.thresholds, rule)
        vendor = np.array([self.vendors[keys[i]] for i in rows])  # type: ignore[index]
        market = np.array([self.markets[keys[i][0]] for i in rows])  # type: ignore[index]
        others = vendor[:, 0] - claimed
        other_codes = vendor[:, 1:] - codes
        base = np.clip(market[:, 1:] / np.maximum(market[:, :1], 1), _RATE_FLOOR, 1 - _RATE_FLOOR)
        alpha = rule.pseudo_listings
        rate = np.clip((other_codes + alpha * base) / (others[:, None] + alpha), _RATE_FLOOR, 1 - _RATE_FLOOR)
        enough = others >= max(rule.min_listings, 1)
        if rule.shift > 0:
            delta = rule.shift * (np.log(rate / (1 - rate)) - np.log(base / (1 - base)))
            shift[np.array(rows)[enough]] = delta[enough]
        if rule.fill_share > 0:
            share = other_codes / np.maximum(others, 1)[:, None]
            best = share.argmax(axis=1)
            ok = enough & (share.max(axis=1) >= rule.fill_share) & (best != _NON_DRUG)
            fill[np.array(rows)[ok]] = best[ok]
        for j, i in enumerate(rows):
            if enough[j]:
                info[i] = {"listings": int(others[j]), "shifted": rule.shift > 0, "filled": False}
        return shift, fill, info

    def shifted_scores(
        self, keys: Sequence[tuple[Hashable, Hashable] | None], scores: np.ndarray
    ) -> np.ndarray:
        """The scores of ``keys``'s records moved towards their vendors' rates (step 2; no fill)."""
        scores = np.asarray(scores, dtype=np.float64)
        return _apply(scores, self._context(keys, scores)[0])

    def decide(
        self, keys: Sequence[tuple[Hashable, Hashable] | None], scores: np.ndarray
    ) -> tuple[list[list[str]], list[dict[str, Any] | None]]:
        """The codes of each record with its vendor's context, and per record what the context did (None
        where it had none): ``{"listings": other claimed listings, "shifted": bool, "filled": bool}``."""
        from pipeline.heads.drug_type import decide

        rule = self.rule
        scores = np.asarray(scores, dtype=np.float64)
        shift, fill, info = self._context(keys, scores)
        shifted = _apply(scores, shift)
        out = decide(shifted, self.thresholds, rule.fallback_ratio, rule.rescue_over_non_drug)
        unclaimed = ~(shifted >= self.thresholds).any(axis=1)
        for i in map(int, np.flatnonzero(unclaimed & (fill >= 0))):
            if out[i] != [NON_DRUG]:  # rescued by decide(): the listing's own scores name a drug
                continue
            out[i] = [DRUG_TYPES[int(fill[i])]]
            info[i] = {**(info[i] or {}), "filled": True}
        return out, info


def _apply(scores: np.ndarray, shift: np.ndarray) -> np.ndarray:
    if not shift.any():
        return scores
    p = np.clip(scores, _EPS, 1 - _EPS)
    return 1.0 / (1.0 + np.exp(-(np.log(p / (1 - p)) + shift)))


def vendor_keys(markets: Sequence[Any], vendors: Sequence[Any]) -> list[tuple[Hashable, Hashable] | None]:
    """``(market, vendor)`` per record; None where the market is None (a messenger ad) or the vendor empty."""
    out: list[tuple[Hashable, Hashable] | None] = []
    for market, vendor in zip(markets, vendors, strict=True):
        name = vendor.strip() if isinstance(vendor, str) else ""
        out.append((market, name) if market is not None and name else None)
    return out


def decide_with_vendors(
    scores: np.ndarray,
    thresholds: np.ndarray,
    keys: Sequence[tuple[Hashable, Hashable] | None],
    rule: VendorContextRule,
) -> list[list[str]]:
    """:class:`VendorProfiles` of ``keys`` built and applied in one go (a table already in memory)."""
    profiles = VendorProfiles(thresholds, rule)
    profiles.add(keys, scores)
    return profiles.decide(keys, scores)[0]


def record_keys(records: pd.DataFrame) -> list[tuple[Hashable, Hashable] | None] | None:
    """:func:`vendor_keys` of a records table's ``market_key`` and ``vendor`` columns; None without them."""
    if "market_key" not in records or "vendor" not in records:
        return None
    return vendor_keys(records["market_key"].tolist(), records["vendor"].tolist())


def tune_in_context(
    scores: np.ndarray,
    y: np.ndarray,
    keys: Sequence[tuple[Hashable, Hashable] | None] | None,
    rule: VendorContextRule,
    tuning: Any,
) -> np.ndarray:
    """Per-class thresholds (:func:`~pipeline.heads.drug_type.tune_thresholds` with ``tuning``) on
    validation scores as the decisions will see them.

    The vendor shift moves a listing's scores before its thresholds apply, so thresholds tuned on the
    unshifted scores sit where the shifted ones no longer are. With ``rule.retune_thresholds`` and a shift,
    the thresholds tuned on the raw scores build the validation vendors' profiles (as they will build the
    scored batch's), and the thresholds are tuned again on the shifted scores. The validation split groups
    records by vendor, so a validation vendor's other listings are all in it. Without keys (no vendor
    column) or with the shift off: the plain tuning."""
    from pipeline.heads.drug_type import tune_thresholds

    thresholds = tune_thresholds(scores, y, tuning)
    if not (rule.retune_thresholds and rule.shift > 0) or keys is None or len(scores) == 0:
        return thresholds
    profiles = VendorProfiles(thresholds, rule)
    profiles.add(keys, scores)
    if not profiles.vendors:
        return thresholds
    return tune_thresholds(profiles.shifted_scores(keys, scores), y, tuning)
