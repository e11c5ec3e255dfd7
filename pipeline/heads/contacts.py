"""Contact channels named in listings and messenger ads (label contract section 5).

``find_contacts(text)`` returns ``{platform, handle, start, end}`` items, ``text[start:end]`` being the
span the handle was read from. Handles are normalised so that the same channel compares equal wherever
it is written:

- telegram: ``@name`` (from ``@name``, ``tg: name``, ``t.me/name``); invite links stay ``t.me/+code``;
- phone numbers (phone, whatsapp, signal): digits only, with ``+`` when written internationally
  (``+`` or ``00``): ``+44 7700 900-123`` -> ``+447700900123``;
- email and jabber: the lower-cased address; session: the lower-cased 66-hex id; threema: upper case;
- every other platform: the user name without a leading ``@``.

How the platform is decided:

1. links (``t.me/``, ``wa.me/``, ``instagram.com/``, ``snapchat.com/add/``, ``kik.me/``, ``signal.me/``) and
   Session ids (66 hex digits starting ``05``) name their platform themselves;
2. otherwise the *keyword cluster* right before the handle does: platform words joined by ``/``, ``or``,
   ``&`` and the like, followed by filler such as ``me``, ``on``, ``id``, ``:`` (``TG/Wickr: sam_uk`` gives
   two contacts); the cluster may be in de, nl, fr, es, pl or ru (``пиши в телеграм``, ``Kontakt über``);
3. a bare ``@name`` without a cluster is Telegram (the channel these ads overwhelmingly use); a bare
   international number (``+``/``00``) is ``phone``; a national number needs a platform or phone word before
   it, so prices, dates and order numbers are never read as phones; ``user@domain`` is ``jabber`` after
   jabber/xmpp/otr/jid or on a known XMPP server, else ``email``.

The same (platform, handle) is reported once, at its first occurrence.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final, TypedDict

import pandas as pd

#: Lower-case keyword -> platform. Words that are only keywords when a ':' / '@' follows are in WEAK_KEYWORDS.
KEYWORDS: Final[dict[str, str]] = {
    **dict.fromkeys(
        [
            "telegram",
            "telegramm",
            "telega",
            "tg",
            "tele",
            "telegrama",
            "телеграм",
            "телеграмм",
            "телеграме",
            "телеграмме",
            "телега",
            "телеге",
            "телегу",
            "тг",
            "телеграмі",
        ],
        "telegram",
    ),
    **dict.fromkeys(["wickr", "wickrme", "wikr", "wickrid", "викр", "wickr-me"], "wickr"),
    **dict.fromkeys(["signal", "сигнал", "сигнале", "signala", "signalu", "signalem"], "signal"),
    **dict.fromkeys(["session", "sessionid"], "session"),
    **dict.fromkeys(["threema", "threemaid", "тreema", "трима"], "threema"),
    **dict.fromkeys(
        [
            "whatsapp",
            "whatsap",
            "whats",
            "watsapp",
            "wapp",
            "wa",
            "ватсап",
            "вотсап",
            "ватсапп",
            "вацап",
            "whatsappie",
        ],
        "whatsapp",
    ),
    "wire": "wire",
    **dict.fromkeys(["jabber", "xmpp", "jid", "otr", "jabb", "джаббер", "жаба", "jabba"], "jabber"),
    **dict.fromkeys(
        [
            "email",
            "e-mail",
            "mail",
            "mailto",
            "courriel",
            "correo",
            "почта",
            "почту",
            "mejl",
            "емейл",
            "имейл",
            "e-mailem",
            "mailem",
        ],
        "email",
    ),
    **dict.fromkeys(
        [
            "phone",
            "tel",
            "telephone",
            "téléphone",
            "telefon",
            "telefono",
            "teléfono",
            "cell",
            "mobile",
            "call",
            "text",
            "sms",
            "handy",
            "тел",
            "телефон",
            "телефону",
            "звоните",
            "звони",
            "номер",
            "zadzwoń",
            "zadzwon",
            "bel",
            "appel",
            "appelez",
            "llama",
            "llámanos",
            "llamar",
            "nummer",
            "numer",
            "gsm",
            "mob",
            "tél",
            "telefonu",
            "whatsapp/sms",
            "anrufen",
            "ruf",
            "bellen",
        ],
        "phone",
    ),
    **dict.fromkeys(["kik", "kikme"], "kik"),
    **dict.fromkeys(["snapchat", "snap", "sc", "снэпчат", "снапчат"], "snapchat"),
    **dict.fromkeys(["instagram", "insta", "ig", "инстаграм", "инсте", "инста", "instagramie"], "instagram"),
    **dict.fromkeys(
        [
            "discord",
            "icq",
            "viber",
            "вайбер",
            "wechat",
            "skype",
            "matrix",
            "element",
            "simplex",
            "briar",
            "jami",
            "tox",
            "keybase",
            "potato",
        ],
        "other",
    ),
}
#: Short or common words that only act as a platform keyword when a ':', '=', '-' or '@' follows.
WEAK_KEYWORDS: Final[frozenset[str]] = frozenset(
    {
        "tg",
        "tele",
        "wa",
        "sc",
        "ig",
        "tel",
        "mail",
        "text",
        "call",
        "cell",
        "mobile",
        "bel",
        "wire",
        "session",
        "snap",
        "signal",
        "matrix",
        "element",
        "tox",
        "potato",
        "whats",
        "mob",
        "otr",
        "jid",
        "insta",
        "handy",
        "line",
    }
)
#: Words allowed between a keyword cluster and the handle (and inside a cluster).
FILLERS: Final[frozenset[str]] = frozenset(
    [
        "me",
        "us",
        "on",
        "at",
        "via",
        "through",
        "id",
        "username",
        "user",
        "name",
        "handle",
        "is",
        "add",
        "contact",
        "contact:",
        "kontakt",
        "über",
        "uber",
        "op",
        "sur",
        "par",
        "por",
        "al",
        "en",
        "per",
        "w",
        "в",
        "на",
        "по",
        "dm",
        "message",
        "msg",
        "ping",
        "hit",
        "up",
        "or",
        "and",
        "oder",
        "of",
        "ou",
        "o",
        "lub",
        "или",
        "и",
        "i",
        "y",
        "und",
        "en",
        "&",
        "/",
        "or:",
        "only",
        "nur",
        "alleen",
        "seulement",
        "solo",
        "tylko",
        "только",
        "pm",
        "write",
        "schreib",
        "schreibt",
        "schreiben",
        "pisz",
        "piszcie",
        "пиши",
        "пишите",
        "напиши",
        "пишіть",
        "reach",
        "find",
        "us:",
        "number",
        "nummer",
        "numer",
        "номер",
        "no",
        "nr",
        "our",
        "my",
        "mein",
        "meine",
        "onze",
        "notre",
        "nuestro",
        "nasz",
        "наш",
        "наш:",
        "me:",
        "at:",
        "secure",
        "private",
        "app",
        "messenger",
        "mess",
        "mijn",
        "mon",
        "mi",
        "mój",
        "chat",
        "orders",
        "bestellungen",
        "bestellingen",
        "commandes",
        "pedidos",
        "zamówienia",
        "заказы",
        "for",
        "für",
        "voor",
        "pour",
        "para",
        "dla",
        "для",
    ]
)
#: Tokens after a keyword that are words, not handles.
STOP_HANDLES: Final[frozenset[str]] = frozenset(
    [
        "me",
        "us",
        "only",
        "for",
        "and",
        "or",
        "the",
        "at",
        "is",
        "available",
        "contact",
        "orders",
        "channel",
        "group",
        "bot",
        "link",
        "below",
        "above",
        "here",
        "preferred",
        "please",
        "our",
        "my",
        "your",
        "id",
        "username",
        "number",
        "account",
        "chat",
        "secure",
        "private",
        "messenger",
        "app",
        "via",
        "on",
        "to",
        "transfer",
        "transfers",
        "money",
        "payment",
        "payments",
        "message",
        "messages",
        "user",
        "name",
        "handle",
        "info",
        "information",
        "details",
        "only!",
        "update",
        "updates",
        "news",
        "support",
        "inbox",
        "dm",
        "pm",
        "me!",
        "first",
        "ask",
        "vendor",
        "shop",
        "store",
        "contacto",
        "kontakt",
        "kontakcie",
        "nur",
        "alleen",
        "seulement",
        "solo",
        "tylko",
        "только",
        "und",
        "oder",
        "en",
        "of",
        "ou",
        "и",
        "или",
        "lub",
        "with",
        "mit",
        "met",
        "avec",
        "con",
        "z",
        "с",
    ]
) | frozenset(KEYWORDS)
#: Public XMPP servers seen in this domain: an address on them is jabber even without a keyword.
JABBER_SERVERS: Final[frozenset[str]] = frozenset(
    [
        "jabber.ccc.de",
        "jabber.de",
        "jabber.org",
        "jabber.ru",
        "jabber.at",
        "jabber.cz",
        "jabber.fr",
        "xmpp.jp",
        "xmpp.is",
        "exploit.im",
        "404.city",
        "jabb.im",
        "creep.im",
        "xmpp.cz",
        "draugr.de",
        "blah.im",
        "jabber.calyxinstitute.org",
        "thesecure.biz",
        "yourdata.forsale",
        "jabber.so",
        "jabbim.com",
        "jabbim.cz",
        "jabber.sk",
        "xabber.org",
        "conversations.im",
        "dismail.de",
        "jabber.hot-chilli.net",
        "sure.im",
        "jabber.root.cz",
    ]
)


#: e-mail providers: "@gmail" in a text is a domain, never a messenger handle
MAIL_PROVIDERS: Final[frozenset[str]] = frozenset(
    [
        "gmail",
        "googlemail",
        "yahoo",
        "hotmail",
        "outlook",
        "live",
        "aol",
        "icloud",
        "gmx",
        "web",
        "mail",
        "protonmail",
        "proton",
        "tutanota",
        "bigpond",
        "optusnet",
        "comcast",
        "verizon",
        "btinternet",
        "yandex",
        "mailru",
        "orange",
        "free",
        "wanadoo",
        "libero",
        "wp",
        "onet",
        "interia",
        "o2",
        "t-online",
        "cock",
    ]
)


class ContactHit(TypedDict):
    """One contact; ``text[start:end]`` is where its handle was written."""

    platform: str
    handle: str
    start: int
    end: int


_TOKEN_RE: Final = re.compile(r"[^\W_]+(?:[-.'’][^\W_]+)*|[@:=>\-–—→➡👉/&]")
_LINK_RE: Final = re.compile(
    r"(?i)(?:https?://)?(?:www\.)?"
    r"(?:(?P<tg>(?:t|telegram)\.(?:me|dog)/(?P<tg_name>(?:joinchat/|\+)[A-Za-z0-9_\-]{8,}|[A-Za-z][A-Za-z0-9_]{3,31}))"
    r"|(?P<wa>wa\.me/\+?(?P<wa_num>\d{7,15}))"
    r"|(?P<wa2>api\.whatsapp\.com/send/?\?phone=\+?(?P<wa2_num>\d{7,15}))"
    r"|(?P<ig>instagram\.com/(?P<ig_name>[A-Za-z0-9_.]{1,30}))"
    r"|(?P<sc>snapchat\.com/add/(?P<sc_name>[A-Za-z0-9_.\-]{2,15}))"
    r"|(?P<kik>kik\.me/(?P<kik_name>[A-Za-z0-9_.]{2,20}))"
    r"|(?P<sig>signal\.me/#p/(?P<sig_num>\+?\d{7,15})))"
)
_SESSION_RE: Final = re.compile(r"(?<![0-9A-Fa-f])05[0-9a-fA-F]{64}(?![0-9A-Fa-f])")
_EMAIL_RE: Final = re.compile(
    r"(?<![\w.+\-])[A-Za-z0-9][A-Za-z0-9._%+\-]{0,63}@(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,12}(?![\w\-])"
)
#: International numbers (+ or 00) need no context; national ones do.
_PHONE_INTL_RE: Final = re.compile(r"(?<![\w+])(?:\+|00)[1-9](?:[\s.\-]?\(?\d\)?){7,14}(?![\w])")
_PHONE_NATL_RE: Final = re.compile(
    r"(?<![\w+.,/:])(?:\(?0\d{1,4}\)?[\s.\-/]?)(?:\d[\s.\-]?){5,10}\d(?![\w.,/:])|"
    r"(?<![\w+.,/:])\(?\d{3}\)?[\s.\-]\d{3}[\s.\-]\d{3,4}(?![\w.,/:])"
)
_AT_HANDLE_RE: Final = re.compile(r"(?<![\w.@/])@([A-Za-z0-9_](?:[A-Za-z0-9_]|\.(?=\w)){2,31})(?![\w@])")
_KW_ALT: Final = "|".join(sorted((re.escape(k) for k in KEYWORDS), key=len, reverse=True))
#: keyword cluster + separators + a bare (not @) handle
_KW_HANDLE_RE: Final = re.compile(
    rf"(?i)(?<![\w@])(?P<cluster>(?:{_KW_ALT})(?:\s*(?:[/&,+|]|or|and|oder|of|ou|o|lub|или|и)\s*(?:{_KW_ALT}))*)"
    r"(?![\w@])(?P<sep>(?:\s*(?:id|me|username|user|name|handle|is|at|on|contact|add)\b)*\s*[:=\-–—>→➡️👉(]*\s*"
    r"(?:(?:id|me|is)\b\s*[:=\-–—>→]*\s*)?)"
    r"(?P<handle>(?<![\w@])[A-Za-z0-9][A-Za-z0-9_.\-]{1,63}(?:#\d{4})?)"
)
_HANDLE_RULES: Final[dict[str, re.Pattern[str]]] = {
    "telegram": re.compile(r"[A-Za-z][A-Za-z0-9_]{4,31}"),
    "wickr": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{2,31}"),
    "signal": re.compile(r"[A-Za-z][A-Za-z0-9_]{2,31}\.\d{2,9}"),
    "threema": re.compile(r"[A-Za-z0-9*]{8}"),
    "wire": re.compile(r"[a-z0-9_]{2,64}"),
    "kik": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.]{1,19}"),
    "snapchat": re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{2,14}"),
    "instagram": re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]{0,29}"),
    "other": re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]{2,31}(?:#\d{4})?"),
    "session": re.compile(r"05[0-9a-fA-F]{64}"),
}
_SEP_CHARS: Final = set(":=-–—>→➡👉@(")
_AT_SIGNAL_RE: Final = re.compile(r"[A-Za-z][A-Za-z0-9_.]{2,31}")


def _keyword_platforms(text: str, start: int, window: int = 48) -> list[str]:
    """Platforms named by the keyword cluster that ends right before ``start`` (same line)."""
    line_start = text.rfind("\n", 0, start) + 1
    chunk = text[max(line_start, start - window) : start]
    tokens = _TOKEN_RE.findall(chunk)
    platforms: list[str] = []
    seen_sep = False
    joined = False  # the token visited before was "/", "&" ...: "Signal/Telegram @name"
    for i, tok in enumerate(reversed(tokens)):
        low = tok.lower()
        if low in _SEP_CHARS:
            seen_sep = True
            continue
        if low in ("/", "&", "+", "|"):
            joined = bool(platforms)
            continue
        platform = KEYWORDS.get(low)
        if platform is not None:
            # a weak keyword counts only right before a separator (``tg:``), the handle, or joined to another
            if low in WEAK_KEYWORDS and not (seen_sep or i == 0 or joined):
                if platforms:
                    break
                continue
            if platform not in platforms:
                platforms.append(platform)
            joined = False
            continue
        if low in FILLERS or low.rstrip(":") in FILLERS:
            continue
        break
    return platforms


_ID_WORD_RE: Final = re.compile(r"(?i)\b(?:id|username|handle)\b")
_HANDLE_END_RE: Final = re.compile(
    r"\s*(?:$|[\n,;|)\]!?]|\.(?:\s|$)|\s+(?:or|and|for|to|oder|und|of|en|ou|et|o|y|lub|или|и)\b)"
)
#: Lower-case words, one of which a text must hold (in any case) for the keyword-cluster rule to run.
_KW_GATE_WORDS: Final = (
    *("wick", "tg", "tele", "kik", "snap", r"sc\b", r"ig\b", "insta", "signal", "threema", "wire", "disc"),
    *("icq", "viber", "wechat", "skype", "session", "element", "matrix", "simplex", "briar", "jami", "tox"),
    *("keybase", "potato", "тел", "трима", "инст", "снэп", "снап", "сигнал", "викр", "вайбер"),
)
_KW_GATE_RE: Final = re.compile("(?i)" + "|".join(_KW_GATE_WORDS))
#: The same test for ASCII text, lower-cased first (see :func:`_may_name_platform`).
_KW_GATE_ASCII_RE: Final = re.compile("|".join(w for w in _KW_GATE_WORDS if w.isascii()))


def _may_name_platform(text: str) -> bool:
    """``_KW_GATE_RE.search(text)``, computed faster for ASCII text (nearly every listing).

    Case-insensitive matching is slow in Python's engine (no quick first-character test per alternative).
    On ASCII text it equals plain matching of the lower-cased text against the lower-case words: an ASCII
    character matches a lower-case letter ignoring case exactly when its lower case is that letter (the
    other case-equivalents, such as the Kelvin sign for "k", are not ASCII); lower-casing ASCII keeps
    lengths and ``\\b`` boundaries; and the non-ASCII (Cyrillic) words cannot match ASCII text at all.
    """
    if text.isascii():
        return _KW_GATE_ASCII_RE.search(text.lower()) is not None
    return _KW_GATE_RE.search(text) is not None


#: Eight digits anywhere in a text (``\D`` is "not ``\d``": one way to match, so no backtracking).
_EIGHT_DIGITS_RE: Final = re.compile(r"\d(?:\D*\d){7}")


def _may_hold_phone(text: str) -> bool:
    """False only when no phone number can be reported from ``text``, so the phone scans may be skipped.

    A necessary condition: a phone match is reported only with 8 to 15 digits in it, and the characters of a
    match that ``str.isdigit`` counts are those the pattern matched with ``\\d``, ``0`` or ``[1-9]``, all of
    them ``\\d`` characters: so the text needs eight. (A match not reported has no effect.) Few listings
    have that many digits.
    """
    return _EIGHT_DIGITS_RE.search(text) is not None


#: Every ``_LINK_RE`` alternative contains ".me/", ".dog/" or ".com/" (same flag, so same case rules).
_LINK_HINT_RE: Final = re.compile(r"(?i)\.(?:me|dog|com)/")


def _looks_like_handle(handle: str, colon: bool, text: str, end: int) -> bool:
    """A word after a platform keyword is a handle when it is shaped like one (digits, "_", ".", lower
    case), or when a colon introduced it and it closes the phrase ("Wickr: PharmaKing"). A capitalised word
    running on into a title ("INSTAGRAM: Growth Secrets", "Skype Credit With Every Order") is not."""
    if any(c.isdigit() or c in "_." for c in handle) or handle.islower():
        return True
    return colon and _HANDLE_END_RE.match(text, end) is not None


def _norm_phone(raw: str) -> str:
    digits = re.sub(r"\D", "", raw)
    if raw.lstrip().startswith("+"):
        return "+" + digits
    if digits.startswith("00"):
        return "+" + digits[2:]
    return digits


def _norm_handle(platform: str, handle: str) -> str:
    handle = handle.strip().rstrip(".-_")
    if platform == "telegram":
        return "@" + handle.lstrip("@")
    if platform in ("email", "jabber", "session", "wire"):
        return handle.lower().lstrip("@")
    if platform == "threema":
        return handle.upper()
    return handle.lstrip("@")


def find_contacts(text: str) -> list[ContactHit]:
    """Every contact channel in ``text`` (see the module docstring for the rules), in text order."""
    if not text:
        return []
    found: list[ContactHit] = []
    taken: list[tuple[int, int]] = []

    def free(start: int, end: int) -> bool:
        return all(end <= s or start >= e for s, e in taken)

    def add(platform: str, handle: str, start: int, end: int) -> None:
        found.append(
            {"platform": platform, "handle": _norm_handle(platform, handle), "start": start, "end": end}
        )

    if "/" in text and _LINK_HINT_RE.search(text):
        for m in _LINK_RE.finditer(text):
            if m.group("tg"):
                name = m.group("tg_name")
                if name.lower().startswith(("joinchat/", "+")):
                    add("telegram", "t.me/" + name, m.start(), m.end())
                    found[-1]["handle"] = "t.me/" + name  # invite links keep their form
                else:
                    add("telegram", name, m.start("tg_name"), m.end("tg_name"))
            elif m.group("wa") or m.group("wa2"):
                num = m.group("wa_num") or m.group("wa2_num")
                span = m.span("wa_num") if m.group("wa") else m.span("wa2_num")
                found.append({"platform": "whatsapp", "handle": "+" + num, "start": span[0], "end": span[1]})
            elif m.group("ig"):
                add("instagram", m.group("ig_name"), m.start("ig_name"), m.end("ig_name"))
            elif m.group("sc"):
                add("snapchat", m.group("sc_name"), m.start("sc_name"), m.end("sc_name"))
            elif m.group("kik"):
                add("kik", m.group("kik_name"), m.start("kik_name"), m.end("kik_name"))
            elif m.group("sig"):
                num = m.group("sig_num")
                found.append(
                    {
                        "platform": "signal",
                        "handle": _norm_phone(num if num.startswith("+") else "+" + num),
                        "start": m.start("sig_num"),
                        "end": m.end("sig_num"),
                    }
                )
            taken.append(m.span())
    if "05" in text:
        for m in _SESSION_RE.finditer(text):
            if free(*m.span()):
                add("session", m.group(), m.start(), m.end())
                taken.append(m.span())
    if "@" in text:
        for m in _EMAIL_RE.finditer(text):
            if not free(*m.span()):
                continue
            domain = m.group().split("@", 1)[1].lower()
            platforms = _keyword_platforms(text, m.start())
            is_jabber = (
                "jabber" in platforms or domain in JABBER_SERVERS or re.match(r"(jabber|xmpp)\.", domain)
            )
            add("jabber" if is_jabber else "email", m.group(), m.start(), m.end())
            taken.append(m.span())
    phone_scans = ((_PHONE_INTL_RE, False), (_PHONE_NATL_RE, True)) if _may_hold_phone(text) else ()
    for rx, needs_context in phone_scans:
        for m in rx.finditer(text):
            if not free(*m.span()):
                continue
            digits = sum(c.isdigit() for c in m.group())
            if not 8 <= digits <= 15:
                continue
            platforms = [
                p
                for p in _keyword_platforms(text, m.start())
                if p in ("whatsapp", "signal", "telegram", "phone", "other", "threema")
            ]
            if needs_context and not platforms:
                continue
            for platform in platforms or ["phone"]:
                platform = "phone" if platform in ("telegram", "threema") else platform
                found.append(
                    {
                        "platform": platform,
                        "handle": _norm_phone(m.group()),
                        "start": m.start(),
                        "end": m.end(),
                    }
                )
            taken.append(m.span())
    if "@" in text:
        for m in _AT_HANDLE_RE.finditer(text):
            if not free(*m.span()) or m.group(1).lower() in STOP_HANDLES:
                continue
            if m.group(1).split(".", 1)[0].lower() in MAIL_PROVIDERS:
                continue  # "@gmail addresses", "(@bigpond edition)": e-mail domains, not handles
            platforms = [
                p for p in _keyword_platforms(text, m.start()) if p not in ("phone", "email", "jabber")
            ]
            for platform in platforms or ["telegram"]:
                handle = m.group(1)
                if platform == "telegram":
                    handle = handle.split(".", 1)[0]  # Telegram names have no dots: the rest is punctuation
                rule = _HANDLE_RULES.get(platform)
                if platform == "signal":
                    rule = _AT_SIGNAL_RE  # "Signal/Telegram @name": an explicit @name needs no number suffix
                if rule is None or rule.fullmatch(handle):
                    add(platform, handle, m.start(), m.start() + 1 + len(handle))
            taken.append(m.span())
    if _may_name_platform(text):
        for m in _KW_HANDLE_RE.finditer(text):
            span = m.span("handle")
            if not free(*span):
                continue
            handle = m.group("handle").rstrip(".-_")
            if (
                handle.lower() in STOP_HANDLES
                or handle[0].isdigit()
                and not re.fullmatch(r"[A-Z0-9*]{8}", handle)
            ):
                continue
            sep = m.group("sep")
            words = re.split(
                r"\s*(?:[/&,+|]|\bor\b|\band\b|\boder\b|\bof\b|\bou\b|\bo\b|\blub\b|\bили\b|\bи\b)\s*",
                m.group("cluster").lower(),
            )
            colon = any(c in ":=>→➡👉(" for c in sep) or bool(_ID_WORD_RE.search(sep))
            has_sep = colon or "@" in sep
            if not _looks_like_handle(handle, colon, text, span[0] + len(handle)):
                continue
            kw_platforms: list[str] = []
            for w in words:
                p = KEYWORDS.get(w.strip())
                if p is None or (w.strip() in WEAK_KEYWORDS and not has_sep):
                    continue
                if p in ("phone", "email", "jabber", "whatsapp", "session") or p in kw_platforms:
                    continue
                kw_platforms.append(p)
            added = False
            for platform in kw_platforms:
                rule = _HANDLE_RULES.get(platform)
                if rule is not None and rule.fullmatch(handle):
                    add(platform, handle, span[0], span[0] + len(handle))
                    added = True
            if added:
                taken.append(span)
    if not found:
        return found
    found.sort(key=lambda h: h["start"])
    unique: list[ContactHit] = []
    seen: set[tuple[str, str]] = set()
    for hit in found:
        key = (hit["platform"], hit["handle"].lower())
        if key not in seen:
            seen.add(key)
            unique.append(hit)
    return unique


class ContactsHead:
    """Head interface over :func:`find_contacts`; nothing to learn, the tables are saved for provenance."""

    name = "contacts"

    def fit(self, records: pd.DataFrame, labels: pd.DataFrame | None = None) -> ContactsHead:
        """Rule head: learns nothing."""
        return self

    def predict(self, records: pd.DataFrame) -> dict[str, list[Any]]:
        """``{"contacts": [[{platform, handle, start, end}, ...], ...]}`` over column ``text``."""
        return {"contacts": [find_contacts(t) if isinstance(t, str) else [] for t in records["text"]]}

    def save(self, directory: Path) -> None:
        """Write the keyword tables (what the rules were) to ``directory/contacts.json``."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        payload = {
            "head": self.name,
            "keywords": KEYWORDS,
            "weak_keywords": sorted(WEAK_KEYWORDS),
            "jabber_servers": sorted(JABBER_SERVERS),
        }
        (directory / "contacts.json").write_text(json.dumps(payload, ensure_ascii=False, indent=1), "utf-8")

    @classmethod
    def load(cls, directory: Path) -> ContactsHead:
        """Load a saved head; the rules are code, so the file only has to name this head."""
        payload = json.loads((Path(directory) / "contacts.json").read_text("utf-8"))
        if payload.get("head") != cls.name:
            raise ValueError(f"{directory} does not hold a contacts head")
        return cls()
