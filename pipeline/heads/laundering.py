"""Laundering hints (label contract section 4): negation-aware lexicon rules plus crypto addresses.

``detect_hints(text)`` returns ``(hints, scores, evidence)``:

- ``hints``: the codes found, in contract order;
- ``scores``: a dict over all ten codes, 1.0 for a rule hit and 0.0 otherwise (a learned layer may replace the
  numbers later; the shape stays);
- ``evidence``: ``{text, start, end, code}`` for each non-negated hit (``text == input[start:end]``).

Lexicons live in ``pipeline/resources/laundering_terms.yaml`` (per code and language; all languages are
applied to every text because ads mix languages, so ``lang`` is accepted for API symmetry only). A hit is
dropped when it is negated (see that file's ``negation`` block): "no PayPal", "we do not take Western Union",
"kein PayPal", "pas de Western Union", "nie przyjmujemy BLIK", "PayPal не принимаем", "PayPal not accepted".
Terms that carry their own negation ("no escrow", "without escrow", "sin escrow") are positive
``escrow_bypass`` hits.

``crypto_address`` is set when :func:`pipeline.heads.crypto.find_addresses` finds an address (valid or not);
the address's currency also sets its payment code (BTC -> ``bitcoin``, XMR -> ``privacy_coin``, others ->
``other_crypto``), since an address in an ad is a request to pay in that currency.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TypedDict

import pandas as pd
import yaml

from pipeline.heads.crypto import AddressHit, find_addresses
from pipeline.heads.regex_gate import gate_for, literal_prefixes  # noqa: F401
from pipeline.taxonomy import LAUNDERING_HINTS

RESOURCE: Final = "laundering_terms.yaml"
RESOURCE_DIR: Final = Path(__file__).resolve().parent.parent / "resources"
_CURRENCY_CODE: Final[dict[str, str]] = {"BTC": "bitcoin", "XMR": "privacy_coin"}
_TOKEN_RE: Final = re.compile(r"[\w’']+|[^\w\s]")
_CLAUSE_END: Final = re.compile(r"[.!?;\n]")
_SEGMENT_END: Final = re.compile(r"[.!?;,\n]")
_LIST_GLUE: Final = re.compile(r"\s*(?:[,/&+]|\b(?:or|and|oder|und|of|en|ou|et|o|y|lub|i|или|и)\b)?\s*", re.I)
_SKIP_PUNCT: Final = frozenset(",/&+:-–—()\"'«»")
#: Scores of a text with no hint (copied per record: callers may change their dict).
_NO_SCORES: Final[dict[str, float]] = dict.fromkeys(LAUNDERING_HINTS, 0.0)


def _trie_pattern(literals: Iterable[str]) -> str:
    """A regex matching any of ``literals`` as written, factored as a trie.

    At a position it matches the *longest* literal starting there: the literals matching at one position
    are prefixes of one another, so they lie on one path of the trie, and the greedy optional tail of each
    node tries the deeper literal before settling for the shorter one. A trie rather than ``a|b|c``: the
    engine then tries one branch per distinct next character, not every literal, at each position.
    """
    trie: dict[str, dict[str, Any]] = {}
    for literal in literals:
        node = trie
        for ch in literal:
            node = node.setdefault(ch, {})
        node[""] = {}  # a literal ends here

    def emit(node: dict[str, Any]) -> str:
        alts = [re.escape(ch) + emit(child) for ch, child in sorted(node.items()) if ch]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return "(?:" + body + ")?" if "" in node else body

    return emit(trie)


class Evidence(TypedDict):
    """One rule hit: ``text`` is ``input[start:end]``."""

    text: str
    start: int
    end: int
    code: str


@dataclass(frozen=True)
class LaunderingLexicon:
    """Compiled lexicon: one regex per code, the negation machinery, and the raw tables it came from.

    ``gates[code]`` holds the lower-case literals of the code's terms (:func:`gate_for`), or None when a term
    has none: the code's regex only runs on a text whose lower-case form holds one of them.
    :meth:`runnable_codes` evaluates all gates in one scan (``gate_scan``, ``gate_implies``).
    """

    raw: dict[str, Any]
    patterns: dict[str, re.Pattern[str]]
    gates: dict[str, tuple[str, ...] | None]
    gate_scan: re.Pattern[str]
    gate_implies: dict[str, frozenset[str]]
    ungated: frozenset[str]
    pre_negation: re.Pattern[str]
    post_negation: re.Pattern[str]
    bridge: frozenset[str]
    breakers: frozenset[str]
    clause_starters: frozenset[str]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LaunderingLexicon:
        """Compile the tables of a ``laundering_terms.yaml`` document."""
        patterns: dict[str, re.Pattern[str]] = {}
        gates: dict[str, tuple[str, ...] | None] = {}
        for code, by_lang in raw["terms"].items():
            if code not in LAUNDERING_HINTS:
                raise ValueError(f"unknown laundering code in lexicon: {code}")
            terms = sorted({t for lst in by_lang.values() for t in lst}, key=len, reverse=True)
            patterns[code] = re.compile(r"(?<!\w)(?:" + "|".join(terms) + r")(?!\w)", re.I)
            gates[code] = gate_for(terms)
        # one scan for all gates (see runnable_codes): a literal found implies the codes of every gate literal
        # that is a prefix of it, since those occur at the same position
        owners: dict[str, set[str]] = {}
        for code, gate in gates.items():
            for literal in gate or ():
                owners.setdefault(literal, set()).add(code)
        gate_implies = {
            literal: frozenset(
                c for prefix, codes in owners.items() if literal.startswith(prefix) for c in codes
            )
            for literal in owners
        }
        neg = raw["negation"]
        return cls(
            raw=raw,
            patterns=patterns,
            gates=gates,
            gate_scan=re.compile(_trie_pattern(owners) if owners else "(?!)"),
            gate_implies=gate_implies,
            ungated=frozenset(code for code, gate in gates.items() if gate is None),
            pre_negation=re.compile(r"(?:" + "|".join(neg["pre"]) + r")|n['’]\w*", re.I),
            post_negation=re.compile(neg["post"], re.I),
            bridge=frozenset(w.lower() for w in neg["bridge"]),
            breakers=frozenset(w.lower() for w in neg["scope_breakers"]),
            clause_starters=frozenset(w.lower() for w in neg["clause_starters"]),
        )

    def runnable_codes(self, low: str) -> frozenset[str]:
        """The codes whose regex may match a text whose lower-case form is ``low``: the ungated codes and
        those with a gate literal in ``low``. The same set as testing each gate's literals with ``in``."""
        codes = self.ungated
        # at each position where a gate literal starts, the longest one: "ethereum" implies "eth" at its
        # start; searching on from the next position, not from the end of the match, finds the literals
        # that start inside it ("eth" inside "tether")
        m = self.gate_scan.search(low)
        while m is not None:
            codes |= self.gate_implies[m.group()]
            m = self.gate_scan.search(low, m.start() + 1)
        return codes


@functools.lru_cache(maxsize=1)
def default_lexicon() -> LaunderingLexicon:
    """The packaged lexicon, loaded and compiled once."""
    return LaunderingLexicon.from_dict(yaml.safe_load((RESOURCE_DIR / RESOURCE).read_text("utf-8")))


def _in_any(pos: int, spans: list[tuple[int, int]]) -> bool:
    return any(s <= pos < e for s, e in spans)


def _negated_before(text: str, start: int, spans: list[tuple[int, int]], lex: LaunderingLexicon) -> bool:
    """A negation cue before ``start`` in the same clause, with only bridge words or other terms between."""
    lo = max(0, start - 90)
    for clause in _CLAUSE_END.finditer(text, lo, start):  # the last sentence end before the term
        lo = clause.end()
    tokens = list(_TOKEN_RE.finditer(text, lo, start))
    # Walking back from the term: a comma ends the scope when the segment between the cue and that comma
    # holds no other term ("not a scam, pay in BTC") or when a new clause starts after it
    # ("..., we take BTC").
    crossed_comma = False
    term_in_segment = False
    after = ""  # the word visited just before (i.e. standing right after the current token)
    for tok in reversed(tokens):
        word = tok.group().lower()
        if _in_any(tok.start(), spans):
            term_in_segment = True
            after = word
            continue
        if word == ",":
            if after in lex.clause_starters:
                return False
            crossed_comma = True
            term_in_segment = False
            continue
        if word in _SKIP_PUNCT:
            continue
        if lex.pre_negation.fullmatch(word):
            head = text[lo : tok.start()].rstrip()
            if not any(c.isalnum() for c in word) and head and head[-1].isalnum():
                return False  # "Bank ❌  BTC ✅": a mark right after a word belongs to that word
            return not crossed_comma or term_in_segment
        if word in lex.breakers or word not in lex.bridge:
            return False
        after = word
    return False


def _asserted(text: str, start: int, lex: LaunderingLexicon) -> bool:
    """A scope breaker ("only", "nur", "только" ...) earlier in the term's comma segment asserts it: a
    negation after a later term does not reach back ("только Monero или BTC, перевод не принимаем")."""
    lo = max(0, start - 90)
    for clause in _SEGMENT_END.finditer(text, lo, start):
        lo = clause.end()
    return any(tok.group().lower() in lex.breakers for tok in _TOKEN_RE.finditer(text, lo, start))


def _negated_after(text: str, end: int, starts: dict[int, int], lex: LaunderingLexicon) -> bool:
    """A negative word after the term, possibly after more terms ("PayPal, Skrill not accepted")."""
    pos = end
    for _ in range(8):
        glue = _LIST_GLUE.match(text, pos)
        nxt = glue.end() if glue else pos
        if nxt > pos and nxt in starts:
            pos = starts[nxt]
        else:
            break
    return lex.post_negation.match(text[pos : pos + 48]) is not None


def detect_hints(
    text: str,
    lang: str | None = None,
    lexicon: LaunderingLexicon | None = None,
    addresses: list[AddressHit] | None = None,
) -> tuple[list[str], dict[str, float], list[Evidence]]:
    """Laundering hints of one text: ``(hints, scores over all ten codes, evidence)``.

    ``addresses`` may pass in :func:`find_addresses` results already computed for the same text.
    """
    lex = lexicon or default_lexicon()
    found: set[str] = set()
    evidence: list[Evidence] = []
    if text:
        raw_hits: list[tuple[int, int, str]] = []
        runnable = lex.runnable_codes(text.lower())
        if runnable:
            # in lexicon order: where two codes' hits start at one position, ``starts`` keeps the later end
            for code, pattern in lex.patterns.items():
                if code in runnable:  # else none of the code's words is there: skip its regex
                    raw_hits.extend((m.start(), m.end(), code) for m in pattern.finditer(text))
        if raw_hits:
            spans = [(s, e) for s, e, _ in raw_hits]
            starts = {s: e for s, e, _ in raw_hits}
            for s, e, code in sorted(raw_hits):
                if _negated_before(text, s, spans, lex) or (
                    not _asserted(text, s, lex) and _negated_after(text, e, starts, lex)
                ):
                    continue
                found.add(code)
                evidence.append({"text": text[s:e], "start": s, "end": e, "code": code})
        if addresses is None:
            addresses = find_addresses(text)
        for hit in addresses:
            for code in ("crypto_address", _CURRENCY_CODE.get(hit["currency"], "other_crypto")):
                found.add(code)
                evidence.append(
                    {"text": hit["address"], "start": hit["start"], "end": hit["end"], "code": code}
                )
    if not found:
        return [], _NO_SCORES.copy(), evidence
    evidence.sort(key=lambda ev: (ev["start"], ev["code"]))
    hints = [c for c in LAUNDERING_HINTS if c in found]
    scores = {c: (1.0 if c in found else 0.0) for c in LAUNDERING_HINTS}
    return hints, scores, evidence


class LaunderingHead:
    """Head interface over :func:`detect_hints`; saves and loads its lexicon as YAML."""

    name = "laundering"

    def __init__(self, lexicon: LaunderingLexicon | None = None) -> None:
        self.lexicon = lexicon or default_lexicon()

    def fit(self, records: pd.DataFrame, labels: pd.DataFrame | None = None) -> LaunderingHead:
        """Rule head: learns nothing."""
        return self

    def predict(self, records: pd.DataFrame) -> dict[str, list[Any]]:
        """Columns laundering_hints, laundering_scores, laundering_evidence and crypto_addresses."""
        out: dict[str, list[Any]] = {
            "laundering_hints": [],
            "laundering_scores": [],
            "laundering_evidence": [],
            "crypto_addresses": [],
        }
        langs = records["lang"] if "lang" in records else [None] * len(records)
        for text, lang in zip(records["text"], langs, strict=True):
            text = text if isinstance(text, str) else ""
            addresses = find_addresses(text)
            hints, scores, evidence = detect_hints(
                text, lang if isinstance(lang, str) else None, self.lexicon, addresses
            )
            out["laundering_hints"].append(hints)
            out["laundering_scores"].append(scores)
            out["laundering_evidence"].append(evidence)
            out["crypto_addresses"].append(addresses)
        return out

    def save(self, directory: Path) -> None:
        """Write the lexicon to ``directory/laundering_terms.yaml`` and a marker ``head.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / RESOURCE).write_text(
            yaml.safe_dump(self.lexicon.raw, allow_unicode=True, sort_keys=False), "utf-8"
        )
        (directory / "head.json").write_text(json.dumps({"head": self.name, "lexicon": RESOURCE}), "utf-8")

    @classmethod
    def load(cls, directory: Path) -> LaunderingHead:
        """A head using the lexicon saved in ``directory``."""
        directory = Path(directory)
        meta = json.loads((directory / "head.json").read_text("utf-8"))
        if meta.get("head") != cls.name:
            raise ValueError(f"{directory} does not hold a laundering head")
        raw = yaml.safe_load((directory / meta["lexicon"]).read_text("utf-8"))
        return cls(LaunderingLexicon.from_dict(raw))
