"""Market category labels that the listing itself contradicts.

A market's category is the vendor's choice, and vendors misfile: oxycodone under "Benzos", kratom under
"Psychedelics", fentanyl patches under "Heroin". Markets also carry placeholder listings that sell no drug
at all (a buyer's custom order, a shipping upgrade, a tip). Training on such labels teaches the misfiling,
and evaluating on them charges the model for naming the drug the title names.

Two checks, both on the title/text alone (never on a model's output):

- **placeholder**: the listing is a custom order, shipping option, tip or insurance entry and names no drug.
- **conflict**: the text names a substance unambiguously (the ``strong`` section of drug_lexicon.yaml,
  the same list the drug_type head trusts) and none of the category's codes is among the named ones.

Such records keep ``labels = None`` with ``label_source`` ``placeholder`` or ``category_conflict`` and a
``label_note``: they are left out of training and of evaluation (like coarse categories), and counted in
``prepare_report.json``. A hand audit of a random sample of conflicts is kept in
``data/labels/conflict_audit.csv`` (ids and verdicts only) and summarised in ``data/labels/README.md``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import cache

from pipeline.heads.drug_type import Lexicon, load_lexicon_terms, load_strong_terms
from pipeline.taxonomy import NON_DRUG

# anchored at the start of the title: these words there mean the entry sells no goods of its own, unless the
# text also names a drug ("Custom listing: 10 pills Adderall" is a drug offer)
PLACEHOLDER = re.compile(
    r"^\W*(?:custom(?:ized)?\s+(?:order|listing)|(?:private|personal|special)\s+listing|listing\s+for\b"
    r"|(?:express|priority|extra|upgraded?)\s+shipping\b|shipping(?:\s+(?:cost|fee|upgrade|add-?on|only"
    r"|and\s+handling|insurance)\b|\W*$)|tips?\b|tip\s+jar|insurance\b|test\s+listing"
    r"|do\s+not\s+(?:buy|order|purchase))"
    r"|\bcustom\s+(?:order|listing)\s+for\b|\bskip\s+(?:the\s+)?queue\b",
    re.IGNORECASE,
)


@cache
def _strong_names() -> Lexicon:
    return Lexicon(load_strong_terms())


@cache
def _all_terms() -> Lexicon:
    return Lexicon(load_lexicon_terms())


def named_codes(text: str) -> set[str]:
    """Codes whose unambiguous substance names occur in ``text``."""
    names = _strong_names()
    return {names.code(m) for m in names.pattern.finditer(text)}


def label_conflict(text: str | None, codes: Sequence[str]) -> tuple[str, str] | None:
    """``(label_source, note)`` when the category label ``codes`` cannot be trusted for ``text``, else None.

    A ``non_drug`` category is never overridden here: a guide or a book may name a drug it does not sell.
    """
    text = (text or "").lower()
    named = named_codes(text)
    if PLACEHOLDER.search(text) and not named and not _all_terms().pattern.search(text):
        return "placeholder", "placeholder listing (custom order, shipping, tip) naming no drug"
    if NON_DRUG in codes:
        return None
    if named and not named.intersection(codes):
        return "category_conflict", f"text names {','.join(sorted(named))}; category says {','.join(codes)}"
    return None
