"""Market category labels that the listing itself contradicts.

A market's category is the vendor's choice, and vendors misfile: oxycodone under "Benzos", kratom under
"Psychedelics", fentanyl patches under "Heroin". Markets also carry placeholder listings that sell no drug
at all (a buyer's custom order, a shipping upgrade, a tip). Training on such labels teaches the misfiling,
and evaluating on them charges the model for naming the drug the title names.

Three checks, all on the title/text alone (never on a model's output):

- **placeholder**: the listing is a custom order, shipping option, tip or insurance entry and names no drug.
- **conflict**: the text names a substance unambiguously (the ``strong`` section of drug_lexicon.yaml,
  the same list the drug_type head trusts) and none of the category's codes is among the named ones.
- **non_drug_goods**: a drug category, but the text names goods the label contract calls ``non_drug``
  (a guide or e-book, fraud or hacking goods, documents, weapons, paraphernalia, test kits, grow
  equipment), no drug word at all and no mass or volume: a carding pack or a vape battery filed under
  "Cocaine" or "Cannabis" by its vendor.

Such records keep ``labels = None`` with ``label_source`` ``placeholder``, ``category_conflict`` or
``non_drug_goods`` and a
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

# the ``label_source`` values of category labels set aside here (neither trained on nor evaluated)
SET_ASIDE_SOURCES = ("category_conflict", "placeholder", "non_drug_goods")

# mostly anchored at the start of the title: these words there mean the entry sells no goods of its own,
# unless the text also names a drug ("Custom listing: 10 pills Adderall" is a drug offer); a few forms are
# placeholders anywhere ("<vendor>'s tip jar", "custom order for <buyer>", a shipping tier "(up to N items)")
PLACEHOLDER = re.compile(
    r"^\W*(?:custom(?:ized)?\s+(?:order|listing)|(?:private|personal|special)\s+listing|listing\s+for\b"
    r"|(?:express|priority|extra|upgraded?)\s+shipping\b|shipping(?:\s+(?:cost|fee|upgrade|add-?on|only"
    r"|and\s+handling|insurance)\b|\W*$)|tips?\b|tip\s+jar|insurance\b|test\s+listing"
    r"|do\s+not\s+(?:buy|order|purchase)|(?:tracking|reship(?:ping|ment)?|listing\s+request|special\s+order)\b)"
    r"|\bcustom\s+(?:order|listing)\s+for\b|\bskip\s+(?:the\s+)?queue\b|\btip\s+jar\b"
    r"|\(\s*up\s+to\s+\d+\s+(?:small\s+)?items?\s*\)",
    re.IGNORECASE,
)

# goods the label contract files under non_drug (its section 1: digital goods, fraud, guides and e-books,
# weapons, services, paraphernalia, drug-test kits, grow equipment), named unambiguously. Only trusted when
# the text names no drug at all: MDMA pills sold as reagent-tested, heroin sold under a "gun powder" grade
# name and hydroponically grown weed are drug offers. (The lexicon's own non_drug terms also hold weak
# words such as "gold" and "silver", which are strain and press names in drug listings, so this list is
# separate.)
NON_DRUG_GOODS = re.compile(
    r"\be-?books?\b|\bguides?\b|\btutorials?\b|\bhow\s+to\s+(?:make|grow|cook|extract|synthesi[sz]e)\b"
    r"|\bcvv\b|\bfullz\b|\bcarding\b|\bcredit\s+cards?\b|\bbank\s+(?:accounts?|drops?|logs?|logins?)\b"
    r"|\bpaypal\s+accounts?\b|\bgift\s*cards?\b|\bhack(?:s|ing|ed)?\b|\bcrack(?:er|ed)\b|\bmalware\b"
    r"|\bbotnet\b|\bkeyloggers?\b|\bransomware\b|\bphishing\b|\bprivate?\s+keys?\b|\bporn\b|\bleak(?:s|ed)\b"
    r"|\breplicas?\b|\bfake\s+ids?\b|\bpassports?\b|\bdriver'?s?\s+licen[cs]es?\b|\bholograms?\b"
    r"|\bweapons?\b|\bguns?\b|\bpistols?\b|\brifles?\b|\bfirearms?\b|\bammo\b|\bammunition\b"
    r"|\b(?:tablet|pill)\s+press(?:es)?\b|\bbongs?\b|\bgrinders?\b|\bvapori[sz]ers?\b|\bbatter(?:y|ies)\b"
    r"|\bchargers?\b|\brolling\s+papers?\b|\b(?:glass|water)\s+pipes?\b|\b(?:digital|pocket)\s+scales?\b"
    r"|\breagents?\b(?!\W*tested)|\btest(?:ing)?\s+kits?\b|\bgrow\s+(?:tents?|lights?|boxe?s?)\b|\bhydroponic\s+systems?\b",
    re.IGNORECASE,
)
# a mass or volume names a substance on offer: a vape battery sold with a "1g" pod sells the pod's contents
AMOUNT = re.compile(r"\d\s*(?:g|gr|grams?|kg|kilos?|oz|mg|ml|ug|mcg|µg)\b", re.IGNORECASE)


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


def lexicon_codes(text: str) -> set[str]:
    """Codes (``non_drug`` included) of every lexicon term, strong or slang, in ``text``."""
    terms = _all_terms()
    return {terms.code(m) for m in terms.pattern.finditer(text)}


def label_conflict(text: str | None, codes: Sequence[str]) -> tuple[str, str] | None:
    """``(label_source, note)`` when the category label ``codes`` cannot be trusted for ``text``, else None.

    A ``non_drug`` category is never overridden here: a guide or a book may name a drug it does not sell.
    """
    text = (text or "").lower()
    named = named_codes(text)
    placeholder, goods = PLACEHOLDER.search(text), NON_DRUG_GOODS.search(text)
    # one lexicon scan, only where a check below needs it
    words = lexicon_codes(text) if not named and (placeholder or goods) else set()
    # any lexicon word, a non-drug one too, makes it an offer (a custom listing for a box of ammo sells ammo)
    if placeholder and not named and not words:
        return "placeholder", "placeholder listing (custom order, shipping, tip) naming no drug"
    if NON_DRUG in codes:
        return None
    if named and not named.intersection(codes):
        return "category_conflict", f"text names {','.join(sorted(named))}; category says {','.join(codes)}"
    if goods and not named and not words - {NON_DRUG} and not AMOUNT.search(text):
        note = f"text names non-drug goods ({goods.group(0)}) and no drug; category says {','.join(codes)}"
        return "non_drug_goods", note
    return None
