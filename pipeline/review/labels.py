"""The labels a reviewer decides on, checked against the label contract before anything is stored.

A decision's labels are one object with the contract's reviewable heads::

    {"drug_types": [...], "quantity": {"total_grams": ..., "units": ..., "dose_mg": ..., "volume_ml": ...},
     "ships_from": [...], "ships_to": [...], "laundering_hints": [...]}

Codes are put in contract order, ``non_drug`` is made exclusive, countries are ISO 3166-1 alpha-2 (plus
``EU``; ``WW`` in ships_to only), quantities are non-negative finite numbers or null.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

from pipeline.taxonomy import (
    DRUG_TYPES,
    LAUNDERING_HINTS,
    QUANTITY_FIELDS,
    REGION_EU,
    REGION_WORLDWIDE,
    enforce_non_drug_exclusive,
)

#: The heads a reviewer accepts or corrects, in display order.
LABEL_FIELDS: tuple[str, ...] = ("drug_types", "quantity", "ships_from", "ships_to", "laundering_hints")


class LabelError(ValueError):
    """Submitted labels break the contract; the message names the field."""


@cache
def _alpha2() -> frozenset[str]:
    import pycountry

    return frozenset(c.alpha_2 for c in pycountry.countries)


def predicted_labels(record: dict[str, Any]) -> dict[str, Any]:
    """The model's labels of a (normalised) labelled record, in decision form."""
    return clean_labels(
        {
            "drug_types": record.get("drug_types") or [],
            "quantity": record.get("quantity") or {},
            "ships_from": record.get("ships_from") or [],
            "ships_to": record.get("ships_to") or [],
            "laundering_hints": record.get("laundering_hints") or [],
        },
        strict=False,
    )


def _codes(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [v for v in re.split(r"[\s,;]+", value) if v]
    if isinstance(value, list | tuple):
        return [str(v).strip() for v in value if str(v).strip()]
    raise LabelError(f"expected a list of codes, got {type(value).__name__}")


def _ordered(codes: list[str], known: tuple[str, ...], field: str, strict: bool) -> list[str]:
    unknown = sorted(set(codes) - set(known))
    if unknown and strict:
        raise LabelError(f"{field}: unknown code(s) {unknown}")
    return [c for c in known if c in codes]


def _countries(value: Any, field: str, strict: bool) -> list[str]:
    allowed = _alpha2() | {REGION_EU} | ({REGION_WORLDWIDE} if field == "ships_to" else set())
    out: list[str] = []
    for code in _codes(value):
        code = code.upper()
        if code not in allowed:
            if strict:
                extra = ", EU" + (", WW" if field == "ships_to" else "")
                raise LabelError(f"{field}: {code!r} is not an ISO 3166-1 alpha-2 code{extra}")
            continue
        if code not in out:
            out.append(code)
    return out


def _quantity_value(value: Any, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):
        raise LabelError(f"quantity.{name}: expected a number, got {value!r}")
    try:
        number = float(str(value).replace(",", ".")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError) as e:
        raise LabelError(f"quantity.{name}: expected a number, got {value!r}") from e
    if not math.isfinite(number) or number < 0:
        raise LabelError(f"quantity.{name}: expected a finite number >= 0, got {value!r}")
    return number


def clean_labels(data: dict[str, Any], strict: bool = True) -> dict[str, Any]:
    """Labels in contract form. ``strict`` rejects unknown codes (reviewer input); otherwise they are
    dropped (a model's output read back). Raises :class:`LabelError` naming the bad field."""
    if not isinstance(data, dict):
        raise LabelError("labels must be an object")
    unknown = sorted(set(data) - set(LABEL_FIELDS))
    if unknown and strict:
        raise LabelError(f"unknown label field(s) {unknown}; known: {list(LABEL_FIELDS)}")
    drug_types = _ordered(_codes(data.get("drug_types")), DRUG_TYPES, "drug_types", strict)
    quantity_in = data.get("quantity") or {}
    if not isinstance(quantity_in, dict):
        raise LabelError("quantity must be an object")
    bad = sorted(set(quantity_in) - set(QUANTITY_FIELDS))
    if bad and strict:
        raise LabelError(f"quantity: unknown field(s) {bad}; known: {list(QUANTITY_FIELDS)}")
    quantity: dict[str, float | None] = {}
    for name in QUANTITY_FIELDS:
        try:
            quantity[name] = _quantity_value(quantity_in.get(name), name)
        except LabelError:
            if strict:
                raise
            quantity[name] = None
    return {
        "drug_types": enforce_non_drug_exclusive(drug_types),
        "quantity": quantity,
        "ships_from": _countries(data.get("ships_from"), "ships_from", strict),
        "ships_to": _countries(data.get("ships_to"), "ships_to", strict),
        "laundering_hints": _ordered(
            _codes(data.get("laundering_hints")), LAUNDERING_HINTS, "laundering_hints", strict
        ),
    }


def changed_fields(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The label fields that differ (quantities compared as numbers)."""
    return [f for f in LABEL_FIELDS if before.get(f) != after.get(f)]
