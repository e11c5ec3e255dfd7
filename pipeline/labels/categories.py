"""Map a market's own category path onto drug_types codes, with a reviewed table per market.

Coarse categories ("Drugs/Other", "Prescription", "Stimulants/Other") map to *weak*: no label. Forcing a
code onto them would teach the model noise and inflate evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache, lru_cache
from importlib import resources
from typing import Any

import yaml

from pipeline.taxonomy import DRUG_TYPES

WEAK = None  # the label of a coarse category


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    codes: tuple[str, ...] | None


def _compile(rules: list[dict[str, Any]]) -> tuple[_Rule, ...]:
    compiled = []
    for rule in rules:
        codes = None if rule.get("weak") else tuple(rule["codes"])
        if codes is not None and not set(codes) <= set(DRUG_TYPES):
            raise ValueError(f"category_map.yaml: unknown code in {rule}")
        compiled.append(_Rule(re.compile(rule["pattern"]), codes))
    return tuple(compiled)


@cache
def _tables() -> tuple[tuple[_Rule, ...], dict[str, tuple[_Rule, ...]]]:
    text = resources.files("pipeline.resources").joinpath("category_map.yaml").read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    markets = {name.lower(): _compile(rules) for name, rules in (data.get("markets") or {}).items()}
    return _compile(data["generic"]), markets


def category_path_key(category: str) -> str:
    """Normalise "Drugs & Chemicals » Stimulants › Cocaine" or "Drugs/Stimulants/Cocaine" to
    "/drugs & chemicals/stimulants/cocaine/"."""
    parts = re.split(r"\s*(?:/|»|›|>|\|)\s*", category.strip().lower())
    parts = [p for p in parts if p and p != "home"]
    return "/" + "/".join(parts) + "/" if parts else "/"


@lru_cache(maxsize=10_000)
def map_category(market: str | None, category: str | None) -> tuple[str, ...] | None:
    """drug_types codes for a market category, or None (weak/unknown) when it is too coarse or missing."""
    if not category:
        return WEAK
    key = category_path_key(category)
    generic, per_market = _tables()
    for rule in per_market.get((market or "").lower(), ()) + generic:
        if rule.pattern.search(key):
            return rule.codes
    return WEAK
