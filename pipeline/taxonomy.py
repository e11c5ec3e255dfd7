"""The label contract (../shared/spec/labels.md) as code.

Codes are stable identifiers. ``tests/test_taxonomy.py`` compares these tuples with the contract's tables
whenever ``../shared/spec/labels.md`` is present, so the two cannot drift apart silently.
"""

from __future__ import annotations

from typing import Final

#: Section 1: drug_types (multi-label; ``non_drug`` is exclusive).
DRUG_TYPES: Final[tuple[str, ...]] = (
    "cannabis",
    "cocaine",
    "amphetamine",
    "methamphetamine",
    "mdma",
    "cathinone",
    "heroin",
    "synthetic_opioid",
    "prescription_opioid",
    "benzodiazepine",
    "prescription_stimulant",
    "psychedelic",
    "dissociative",
    "ghb",
    "steroid",
    "other_drug",
    "non_drug",
)
NON_DRUG: Final = "non_drug"
#: drug codes proper (everything but ``non_drug``)
DRUG_CODES: Final[tuple[str, ...]] = tuple(c for c in DRUG_TYPES if c != NON_DRUG)

#: Section 2: the four fields of the quantity object, in contract order.
QUANTITY_FIELDS: Final[tuple[str, ...]] = ("total_grams", "units", "dose_mg", "volume_ml")
#: Relative tolerance with which quantity numbers compare when scored.
QUANTITY_TOLERANCE: Final = 0.02

#: Section 3: special region codes beside ISO 3166-1 alpha-2.
REGION_EU: Final = "EU"
REGION_WORLDWIDE: Final = "WW"  # ships_to only

#: Section 4: laundering_hints (multi-label).
LAUNDERING_HINTS: Final[tuple[str, ...]] = (
    "bitcoin",
    "privacy_coin",
    "other_crypto",
    "mixer",
    "cash_by_mail",
    "gift_card",
    "money_transfer",
    "cashout_service",
    "escrow_bypass",
    "crypto_address",
)

#: Section 5: contact platforms.
CONTACT_PLATFORMS: Final[tuple[str, ...]] = (
    "telegram",
    "wickr",
    "signal",
    "session",
    "threema",
    "whatsapp",
    "wire",
    "jabber",
    "email",
    "phone",
    "kik",
    "snapchat",
    "instagram",
    "other",
)

#: Record kinds.
KINDS: Final[tuple[str, ...]] = ("listing", "ad")

#: Section 6: fields every labelled record carries (more may be added, none renamed or dropped).
LABELLED_FIELDS: Final[tuple[str, ...]] = (
    "id",
    "source",
    "kind",
    "drug_types",
    "drug_type_scores",
    "quantity",
    "quantities",
    "ships_from",
    "ships_to",
    "laundering_hints",
    "laundering_scores",
    "crypto_addresses",
    "contacts",
    "model",
)


def empty_quantity() -> dict[str, float | None]:
    """The contract's quantity object with every field null."""
    return dict.fromkeys(QUANTITY_FIELDS)


def enforce_non_drug_exclusive(codes: list[str]) -> list[str]:
    """Apply the contract rule that ``non_drug`` never appears with another code.

    A drug code wins over ``non_drug``; an empty list becomes ``["non_drug"]`` so the field is never empty.
    """
    drugs = [c for c in codes if c != NON_DRUG]
    return drugs if drugs else [NON_DRUG]
