"""Text normalisation for scraped listings and messages.

- :func:`clean_text`: mojibake repair (ftfy), HTML tags and entities out, Unicode NFKC, whitespace. Emoji
  and flag emoji are kept: a flag beside "ships from" carries the origin.
- :func:`fold_obfuscation`: a de-obfuscated copy for matching ("c0ke" -> "coke", "M D M A" -> "MDMA",
  "xxxanax" -> "xanax"); the original text is never changed.
- :func:`detect_language`: offline language identification tuned for short, jargon-heavy text.

Everything here is pure and cheap on ASCII text, because the clean stage runs it on millions of records.
"""

from __future__ import annotations

import html
import os
import re
import unicodedata
from functools import cache

import ftfy
import ftfy.badness
from selectolax.lexbor import LexborHTMLParser as HTMLParser

_TAG = re.compile(r"<\s*/?\s*[a-zA-Z][a-zA-Z0-9]*(\s[^<>]*)?/?\s*>")
_BLOCK_TAG = re.compile(r"<\s*(br|/p|/div|/li|/tr|/h[1-6])\b[^<>]*>", re.IGNORECASE)
_HSPACE = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n\s*\n\s*\n+")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_FTFY_CONFIG = ftfy.TextFixerConfig(unescape_html=False, uncurl_quotes=False)


def strip_html(text: str) -> str:
    """Remove HTML tags (keeping block breaks as newlines) and drop script/style content."""
    if "<" not in text or not _TAG.search(text):
        return text
    marked = _BLOCK_TAG.sub(lambda m: "\n" + m.group(0), text)
    tree = HTMLParser(marked)
    for node in tree.css("script, style, noscript"):
        node.decompose()
    root = tree.body or tree.root
    return root.text(separator="") if root is not None else ""


_MOJIBAKE_LEAD = re.compile("[\u00c2\u00c3\u00c5\u00d0\u00d1\u00e2\u00ef\u20ac\ufffd]")
_NEEDS_WORK = re.compile(r"[<&\x00-\x1f\x7f]|  |^\s|\s$")


def clean_text(text: str | None) -> str:
    """Normalise one scraped text field; returns "" for None.

    Order matters: tags are stripped before entities are unescaped, so "&lt;b&gt;" written by a vendor
    survives as the literal "<b>" instead of being read as markup.
    """
    if not text:
        return ""
    if text.isascii() and not _NEEDS_WORK.search(text):
        return text  # the common case (a plain one-line title): nothing to repair
    text = strip_html(text)
    if "&" in text:
        text = html.unescape(text)
    if not text.isascii():
        # ftfy works line by line and its own badness test is slow on pages: gate both behind the lead
        # characters that UTF-8 read as cp1252/latin-1 leaves (Ã, Â, â€, Ð, Ñ, ...)
        if _MOJIBAKE_LEAD.search(text) and ftfy.badness.is_bad(text):
            text = ftfy.fix_text(text, _FTFY_CONFIG)
        text = unicodedata.normalize("NFKC", text)
    text = _CONTROL.sub(" ", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _HSPACE.sub(" ", text)
    text = "\n".join(line.strip() for line in text.split("\n"))
    text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


def compose_text(title: str, body: str) -> str:
    """What the models read: the title, then the body on the next line (spans index into this)."""
    if title and body:
        if body.startswith(title):  # many scrapes repeat the title as the first line of the body
            return body
        return f"{title}\n{body}"
    return title or body


# --- obfuscation folding -------------------------------------------------------------------------------

_LEET = str.maketrans(
    {"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "$": "s", "@": "a", "€": "e"}
)
# a word with leet digits/symbols *inside* it: c0ke, m3th, x4nax, co$aine (not 100mg, 4-MMC)
_LEET_WORD = re.compile(r"(?<![\w$@])(?=[\w$@]*[a-zA-Z][0-9$@€][a-zA-Z])[a-zA-Z][\w$@€]*[a-zA-Z](?![\w$@])")
# single letters separated by one space, dot, dash or underscore: "M D M A", "k.e.t", "c-o-k-e"
_SPACED = re.compile(r"(?<![\w])(?:[A-Za-z][ ._\-*]){2,}[A-Za-z](?![\w])")
_REPEAT = re.compile(r"([a-zA-Z])\1{2,}")
_DOUBLE_OK = frozenset("eosl")  # weeed -> weed, speeed -> speed, gooood -> good; xxxanax -> xanax


def _fold_repeat(match: re.Match[str]) -> str:
    ch = match.group(1)
    return ch * 2 if ch.lower() in _DOUBLE_OK else ch


def fold_obfuscation(text: str) -> str:
    """A de-obfuscated copy of ``text`` for matching; spans in it are *not* aligned with ``text``."""
    folded = _SPACED.sub(lambda m: re.sub(r"[ ._\-*]", "", m.group(0)), text)
    folded = _LEET_WORD.sub(lambda m: m.group(0).translate(_LEET), folded)
    folded = _REPEAT.sub(_fold_repeat, folded)
    return folded


# --- language identification ---------------------------------------------------------------------------

#: Languages narcotag identifies (ISO 639-1); anything else is reported as "und".
LANGUAGES: tuple[str, ...] = ("en", "de", "nl", "fr", "es", "pl", "ru")

# Function words and frequent market words per language: cheap evidence that settles most texts without a
# statistical model. Words shared by several languages (e.g. "de", "in", "die") are left out on purpose.
_STOPWORDS: dict[str, frozenset[str]] = {
    "en": frozenset(
        [
            "the",
            "and",
            "for",
            "with",
            "from",
            "to",
            "of",
            "in",
            "on",
            "is",
            "are",
            "you",
            "your",
            "our",
            "we",
            "will",
            "all",
            "this",
            "that",
            "free",
            "shipping",
            "ships",
            "order",
            "only",
            "best",
            "quality",
            "high",
            "per",
            "each",
            "pure",
            "fast",
            "stealth",
            "days",
            "delivery",
            "price",
        ]
    ),
    "de": frozenset(
        [
            "und",
            "der",
            "das",
            "ist",
            "mit",
            "für",
            "nicht",
            "auf",
            "ein",
            "eine",
            "einer",
            "dem",
            "den",
            "des",
            "sich",
            "auch",
            "wir",
            "ihr",
            "sie",
            "bei",
            "nach",
            "aus",
            "versand",
            "lieferung",
            "qualität",
            "bitte",
            "gramm",
            "stück",
            "preis",
            "nur",
            "sehr",
            "schnell",
            "sofort",
            "kein",
            "keine",
            "wird",
            "werden",
            "deutschland",
            "abholung",
            "bezahlung",
        ]
    ),
    "nl": frozenset(
        [
            "het",
            "een",
            "van",
            "voor",
            "met",
            "niet",
            "zijn",
            "wij",
            "jij",
            "ook",
            "maar",
            "bij",
            "naar",
            "uit",
            "verzending",
            "levering",
            "kwaliteit",
            "alleen",
            "snel",
            "prijs",
            "bestellen",
            "betalen",
            "geen",
            "onze",
            "jullie",
            "nederland",
            "bezorging",
            "graag",
            "wordt",
            "kunnen",
        ]
    ),
    "fr": frozenset(
        [
            "le",
            "la",
            "les",
            "des",
            "du",
            "un",
            "une",
            "et",
            "est",
            "pour",
            "avec",
            "pas",
            "sur",
            "nous",
            "vous",
            "dans",
            "qui",
            "livraison",
            "qualité",
            "prix",
            "commande",
            "seulement",
            "rapide",
            "très",
            "envoi",
            "paiement",
            "disponible",
            "aussi",
            "sont",
            "notre",
            "votre",
            "contactez",
        ]
    ),
    "es": frozenset(
        [
            "el",
            "los",
            "las",
            "del",
            "una",
            "y",
            "es",
            "para",
            "con",
            "por",
            "que",
            "no",
            "en",
            "su",
            "nuestro",
            "envío",
            "envio",
            "entrega",
            "calidad",
            "precio",
            "pedido",
            "solo",
            "muy",
            "rápido",
            "rapido",
            "también",
            "tambien",
            "pago",
            "disponible",
            "gramos",
            "somos",
            "tenemos",
        ]
    ),
    "pl": frozenset(
        [
            "i",
            "jest",
            "nie",
            "na",
            "się",
            "do",
            "z",
            "w",
            "że",
            "jak",
            "dla",
            "oraz",
            "tylko",
            "bardzo",
            "wysyłka",
            "wysylka",
            "dostawa",
            "jakość",
            "jakosc",
            "cena",
            "zamówienia",
            "zamowienia",
            "płatność",
            "platnosc",
            "szybko",
            "mamy",
            "przez",
            "od",
            "po",
            "polska",
            "paczkomat",
        ]
    ),
}
_SPECIAL_CHARS: dict[str, str] = {"de": "äöüß", "pl": "łąęśźżćń", "es": "ñ¿¡", "fr": "çèêàùœ", "nl": ""}
_WORD = re.compile(r"[^\W\d_]+", re.UNICODE)
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_UKRAINIAN_ONLY = re.compile(r"[іїєґІЇЄҐ]")


@cache
def _lingua_detector():  # type: ignore[no-untyped-def]
    """Built on first use (not at import): the 7 languages plus close neighbours as decoys."""
    from lingua import Language, LanguageDetectorBuilder

    languages = [
        Language.ENGLISH,
        Language.GERMAN,
        Language.DUTCH,
        Language.FRENCH,
        Language.SPANISH,
        Language.POLISH,
        Language.RUSSIAN,
        Language.ITALIAN,
        Language.PORTUGUESE,
        Language.UKRAINIAN,
        Language.SWEDISH,
        Language.CZECH,
    ]
    return LanguageDetectorBuilder.from_languages(*languages).with_minimum_relative_distance(0.1).build()


def _lingua_code(language: object) -> str:
    if language is None:
        return "und"
    code = language.iso_code_639_1.name.lower()  # type: ignore[attr-defined]
    return code if code in LANGUAGES else "und"


@cache
def _stopword_index() -> dict[str, tuple[int, ...]]:
    """word -> indexes (into the language order of _STOPWORDS) of the languages it is a stopword of."""
    languages = list(_STOPWORDS)
    index: dict[str, list[int]] = {}
    for i, lang in enumerate(languages):
        for word in _STOPWORDS[lang]:
            index.setdefault(word, []).append(i)
    return {word: tuple(ids) for word, ids in index.items()}


_STOP_LANGS = tuple(_STOPWORDS)
_MIN_WORDS_FOR_MODEL = 8


def _cheap_language(text: str) -> str | None:
    """Settle the language from script, function words and special letters; None when a model must.

    Texts under eight words without clear evidence are "und": a statistical model reads a language into
    a few jargon words ("Kush 5g top") no more reliably than a coin.
    """
    sample = text[:600]
    if len(_CYRILLIC.findall(sample)) >= 3:
        return "und" if _UKRAINIAN_ONLY.search(sample) else "ru"
    words = _WORD.findall(sample.lower())
    if not words:
        return "und"
    scores = [0] * len(_STOP_LANGS)
    index = _stopword_index()
    for word in words:
        for i in index.get(word, ()):
            scores[i] += 1
    if not sample.isascii():
        lowered = sample.lower()
        for i, lang in enumerate(_STOP_LANGS):
            chars = _SPECIAL_CHARS.get(lang, "")
            if chars and any(c in lowered for c in chars):
                scores[i] += 2
    ranked = sorted(scores, reverse=True)
    best = _STOP_LANGS[scores.index(ranked[0])]
    if ranked[0] >= 2 and ranked[0] > ranked[1]:
        return best
    if scores[0] >= 1 and ranked[1] == 0:  # English evidence and nothing else
        return "en"
    if len(words) < _MIN_WORDS_FOR_MODEL:
        return "und"
    return None


def detect_language(text: str) -> str:
    """ISO 639-1 code of ``text`` among :data:`LANGUAGES`, or "und" when the text does not tell.

    Short listing titles carry little language signal: function words and language-specific letters
    decide most texts; lingua (offline, statistical) decides the rest. See :func:`detect_languages`.
    """
    return detect_languages([text])[0]


_parallel_pid: list[int] = []  # the process that started lingua's thread pool (set on first use)


def _detect_many(samples: list[str]) -> list[object]:
    """lingua over many texts: its thread pool in the process that started it; one by one in a forked
    child of that process, whose copy of the pool has no threads left (using it there deadlocks)."""
    detector = _lingua_detector()
    if not _parallel_pid:
        _parallel_pid.append(os.getpid())
    if _parallel_pid[0] == os.getpid():
        return list(detector.detect_languages_in_parallel_of(samples))
    return [detector.detect_language_of(sample) for sample in samples]


def share_language_models() -> None:
    """Load lingua's models in a process about to fork workers: the forked workers then share those pages
    (copy-on-write) instead of loading ~280 MiB each, and they detect one text at a time, since a forked
    copy of a thread pool has no threads. Two short texts, one Latin and one Cyrillic, make lingua load
    every model of every configured language (short texts use all n-gram orders)."""
    detector = _lingua_detector()
    for sample in ("shipping worldwide from europe", "быстрая доставка по всему миру"):
        detector.detect_language_of(sample)
    if not _parallel_pid:
        _parallel_pid.append(os.getpid())


def detect_languages(texts: list[str]) -> list[str]:
    """Languages of many texts: the cheap pass first, then lingua in parallel on the undecided."""
    result = [_cheap_language(t) for t in texts]
    undecided = [i for i, code in enumerate(result) if code is None]
    if undecided:
        detected = _detect_many([texts[i][:600] for i in undecided])
        for i, language in zip(undecided, detected, strict=True):
            result[i] = _lingua_code(language)
    return [code or "und" for code in result]
