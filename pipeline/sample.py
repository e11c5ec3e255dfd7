"""Built-in sample data: realistic raw scrapes plus the true labels of every item.

``run`` writes ``data/raw/sample/`` so that every later stage (ingest, clean, train, evaluate, score) runs
end to end without external data:

- ``html/nightshade/*.html``, ``html/velvet/*.html``: listing pages of two fictional markets, with page
  chrome (navigation, related listings, reviews, scripts) that a parser must ignore;
- ``agora_export.csv`` (Kaggle Agora columns; market "Juniper"), ``listings.jsonl`` (generic listing
  format; market "Obsidian"), ``extra/`` (a small generic JSONL file beside a binary junk file);
- ``telegram/<channel>/result.json`` (Telegram Desktop channel exports in en, de, nl, fr, es, pl, ru) and
  ``messenger.csv`` (generic messenger rows);
- ``truth.jsonl``: the label-contract labels (../shared/spec/labels.md) of every readable item, derived
  from the generation choices, never from an extractor;
- ``manifest.json``: sources, counts, and the deliberately bad items with the reason the clean stage is
  expected to give.

All text comes from ``resources/sample_templates.yaml`` and this module. One ``random.Random(seed)``
drives every choice, so a seed always gives the same bytes in every file.
"""

from __future__ import annotations

import calendar
import csv
import html
import io
import json
import random
import re
import shutil
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import typer
import yaml

from pipeline.config import Paths, from_dict, read_yaml
from pipeline.heads import crypto
from pipeline.ingest.records import stable_id
from pipeline.taxonomy import DRUG_CODES, DRUG_TYPES, LAUNDERING_HINTS, NON_DRUG

TEMPLATES_PATH = Path(__file__).parent / "resources" / "sample_templates.yaml"
SAMPLE_DIR = "data/raw/sample"
START = datetime(2024, 9, 2, 8, 0, 0, tzinfo=UTC)
AD_LANGS = ("en", "de", "nl", "fr", "es", "pl", "ru")


def _source(name: str, path: str, adapter: str, preset: str | None, kind: str, market: str | None) -> dict:
    return {
        "name": name,
        "path": f"{SAMPLE_DIR}/{path}",
        "adapter": adapter,
        "preset": preset,
        "kind": kind,
        "market": market,
    }


#: Source definitions (also in manifest.json): what the ingest stage reads, and how.
SOURCES: tuple[dict[str, str | None], ...] = (
    _source("sample_nightshade", "html/nightshade", "html", None, "listing", "Nightshade"),
    _source("sample_velvet", "html/velvet", "html", None, "listing", "Velvet Bazaar"),
    _source("sample_agora_csv", "agora_export.csv", "tabular", "kaggle_agora", "listing", "Juniper"),
    _source("sample_listings", "listings.jsonl", "tabular", "generic", "listing", "Obsidian"),
    _source("sample_telegram", "telegram", "telegram", None, "ad", None),
    _source("sample_messenger", "messenger.csv", "tabular", "messenger_generic", "ad", None),
    _source("sample_extra", "extra", "tabular", "generic", "listing", "Kestrel"),
)

#: Conventional amounts (English writing): nominal grams -> [(text, grams per the label contract)].
CONVENTIONAL: dict[float, list[tuple[str, float]]] = {
    3.5: [("an eighth", 3.54), ("1/8 oz", 3.54), ("eighth (3.5g)", 3.5)],
    7: [("quarter oz", 7.09), ("1/4 oz", 7.09)],
    14: [("half ounce", 14.17), ("1/2 oz", 14.17), ("HO (14g)", 14.0)],
    28: [("1 oz", 28.35), ("an ounce", 28.35), ("Ounce (28 grams)", 28.0), ("1oz (28g)", 28.0)],
    113.4: [("QP", 113.4), ("quarter pound", 113.4), ("QP (112g)", 112.0), ("4 oz", 113.4)],
    453.6: [("1 lb", 453.59), ("1 pound", 453.59), ("LB (448g)", 448.0)],
}
#: Multi-packs: nominal grams -> (count, grams each); "2 x 5g" is 10 g.
MULTIPACK: dict[float, tuple[int, float]] = {2: (2, 1), 10: (2, 5), 20: (2, 10), 50: (5, 10), 100: (4, 25)}
EUROPE = frozenset({"NL", "DE", "GB", "ES", "FR", "BE", "PL", "CZ", "IT", "AT", "CH", "SE", "PT"})
#: Bad-item kinds written once each, then the share of the remaining bad items per kind.
BAD_ONE_OFF = ("ob_huge_text", "tg_broken_file", "extra_junk_file")
BAD_WEIGHTS: dict[str, float] = {
    "ns_no_text": 0.15,
    "vb_no_text": 0.12,
    "ag_wrong_fields": 0.10,
    "ob_empty_text": 0.14,
    "ob_truncated": 0.14,
    "ob_negative_price": 0.08,
    "tg_no_caption": 0.15,
    "msg_wrong_fields": 0.12,
}
#: Readable but messy items per market (kept, labelled, listed under "messy_items" in the manifest).
MESSY_PER_MARKET = 200  # one per this many listings, at least one
HUGE_TEXT_CHARS = 10 * 1024 * 1024


@dataclass(frozen=True)
class SampleParams:
    """How much sample data to write, and which share of it is deliberately broken."""

    seed: int = 13
    listings_per_market: int = 400
    messages_per_language: int = 60
    bad_fraction: float = 0.05


# ============================================================================================ helpers


@cache
def load_templates() -> dict[str, Any]:
    """The sample text templates and word lists (``resources/sample_templates.yaml``), loaded once."""
    with open(TEMPLATES_PATH, encoding="utf-8") as f:
        data: dict[str, Any] = yaml.safe_load(f)
    return data


def _num(x: float, comma: bool = False) -> str:
    text = f"{x:g}"
    return text.replace(".", ",") if comma else text


def _clean_number(x: float | int | None) -> float | int | None:
    if x is None or isinstance(x, int):
        return x
    return round(float(x), 4)


def mojibake(text: str) -> str | None:
    """UTF-8 text decoded as cp1252, as a misconfigured scraper stores it (ftfy repairs it).

    None when the text is pure ASCII (nothing would change) or cp1252 cannot hold its bytes.
    """
    try:
        broken = text.encode("utf-8").decode("cp1252")
    except UnicodeDecodeError:
        return None
    return broken if broken != text else None


def _iso(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _unix(dt: datetime) -> str:
    return str(calendar.timegm(dt.timetuple()))


def _pick(rng: random.Random, weights: Mapping[str, float]) -> str:
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0]


def allocate(total: int, weights: dict[str, float]) -> dict[str, int]:
    """Split ``total`` over the keys in proportion to their weights (largest remainder; deterministic)."""
    wsum = sum(weights.values())
    raw = {k: total * w / wsum for k, w in weights.items()}
    out = {k: int(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: (out[k] - raw[k], k))[: total - sum(out.values())]:
        out[k] += 1
    return out


def _ordered(codes: Sequence[str], order: Sequence[str]) -> list[str]:
    wanted = set(codes)
    return [c for c in order if c in wanted]


# ============================================================================================ labels


@dataclass
class Labels:
    """Contract labels of one item, filled in while its text is generated."""

    drug_types: list[str] = field(default_factory=lambda: [NON_DRUG])
    is_offer: bool = True
    quantity: dict[str, float | int | None] = field(
        default_factory=lambda: {"total_grams": None, "units": None, "dose_mg": None, "volume_ml": None}
    )
    ships_from: list[str] = field(default_factory=list)
    ships_to: list[str] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)
    crypto_addresses: list[dict[str, Any]] = field(default_factory=list)
    contacts: list[dict[str, str]] = field(default_factory=list)

    def truth(self, **head: Any) -> dict[str, Any]:
        """One truth.jsonl line: the ``head`` fields (id, source, kind ...) and then the labels."""
        hints = set(self.hints) | ({"crypto_address"} if self.crypto_addresses else set())
        return {
            **head,
            "is_offer": self.is_offer,
            "drug_types": _ordered(self.drug_types, DRUG_TYPES),
            "quantity": {k: _clean_number(v) for k, v in self.quantity.items()},
            "ships_from": list(dict.fromkeys(self.ships_from)),
            "ships_to": list(dict.fromkeys(self.ships_to)),
            "laundering_hints": _ordered(sorted(hints), LAUNDERING_HINTS),
            "crypto_addresses": self.crypto_addresses,
            "contacts": self.contacts,
        }


@dataclass
class Identity:
    """The handles and wallet addresses a vendor or channel writes in its texts."""

    handles: dict[str, str]
    addresses: dict[str, tuple[str, str, bool]]  # placeholder -> (currency, address, checksum valid)


def make_identity(rng: random.Random, name: str, country: str) -> Identity:
    """Fictional handles and generated crypto addresses (a few with a typo that breaks the checksum)."""
    tpl = load_templates()
    base = re.sub(r"[^a-z0-9]", "", name.lower())[:14] or "shop"
    base = (base if base[0].isalpha() else "x" + base).ljust(5, "x")
    prefix, length = tpl["phones"].get(country, tpl["phones"]["GB"])
    phone = prefix + "".join(str(rng.randint(0, 9)) for _ in range(length - len(prefix)))
    handles = {
        "tg": base + rng.choice(["", "_shop", "_official", "bot", "24", "_plug"]),
        "tg_backup": base + rng.choice(["_backup", "_reserve", "_2", "_new"]),
        "wickr": base + str(rng.randint(10, 99)),
        "session": "05" + rng.randbytes(32).hex(),
        "threema": "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(8)),
        "signal": f"{base}.{rng.randint(1, 99):02d}",
        "email": f"{base}@{rng.choice(tpl['mail_domains'])}",
        "jabber": f"{base}@{rng.choice(tpl['jabber_domains'])}",
        "whatsapp": phone,
        "phone": phone,
        "snap": f"{base}_{rng.randint(1, 999)}",
        "kik": f"{base}{rng.randint(100, 999)}",
        "ig": f"{base}.{rng.choice(['official', 'shop', 'daily'])}",
        "wire": f"{base}_wire",
    }
    btc_kind = rng.choice(["p2pkh", "p2pkh", "p2sh", "bech32", "taproot"])
    if btc_kind == "p2pkh":
        btc = crypto.make_btc_p2pkh(rng.randbytes(20))
    elif btc_kind == "p2sh":
        btc = crypto.make_btc_p2sh(rng.randbytes(20))
    elif btc_kind == "bech32":
        btc = crypto.make_btc_bech32(rng.randbytes(20))
    else:
        btc = crypto.make_btc_taproot(rng.randbytes(32))
    made = {
        "btc": ("BTC", btc),
        "xmr": ("XMR", crypto.make_xmr(rng.randbytes(32), rng.randbytes(32))),
        "eth": ("ETH", crypto.make_eth(rng.randbytes(20))),
        "ltc": ("LTC", crypto.make_ltc_p2pkh(rng.randbytes(20))),
        "trx": ("TRX", crypto.make_trx(rng.randbytes(20))),
    }
    addresses: dict[str, tuple[str, str, bool]] = {}
    for key, (currency, address) in made.items():
        if rng.random() < 0.15:  # a typo'd address: written as is, its checksum fails
            addresses[key] = (currency, crypto.corrupt(address), False)
        else:
            addresses[key] = (currency, address, True)
    return Identity(handles=handles, addresses=addresses)


#: Placeholder -> contact platform (handles normalised as pipeline.heads.contacts reports them).
CONTACT_PLACEHOLDERS = {
    "tg": "telegram",
    "tg_link": "telegram",
    "wickr": "wickr",
    "session": "session",
    "threema": "threema",
    "signal": "signal",
    "email": "email",
    "jabber": "jabber",
    "whatsapp": "whatsapp",
    "snap": "snapchat",
    "phone": "phone",
    "kik": "kik",
    "ig": "instagram",
    "wire": "wire",
}


class Filler:
    """Fills template placeholders and records the contacts, addresses and hints they put in the text."""

    def __init__(self, ident: Identity, rng: random.Random, labels: Labels) -> None:
        self.ident = ident
        self.rng = rng
        self.labels = labels

    def fill(self, template: str, values: dict[str, str] | None = None, hints: Sequence[str] = ()) -> str:
        out: list[str] = []
        for literal, name, _spec, _conv in string.Formatter().parse(template):
            out.append(literal)
            if name is not None:
                out.append(self._value(name, values or {}))
        self.add_hints(hints)
        return "".join(out)

    def add_hints(self, hints: Sequence[str]) -> None:
        for h in hints:
            if h not in self.labels.hints:
                self.labels.hints.append(h)

    def _contact(self, platform: str, handle: str) -> None:
        entry = {"platform": platform, "handle": handle}
        if entry not in self.labels.contacts:
            self.labels.contacts.append(entry)

    def _value(self, name: str, values: dict[str, str]) -> str:
        if name in values:
            return values[name]
        h = self.ident.handles
        if name == "tg":
            self._contact("telegram", "@" + h["tg"])
            return "@" + h["tg"]
        if name == "tg_link":
            self._contact("telegram", "@" + h["tg_backup"])
            return self.rng.choice(["t.me/", "https://t.me/"]) + h["tg_backup"]
        if name in CONTACT_PLACEHOLDERS:
            handle = h[name]
            norm = handle.upper() if name == "threema" else handle.lower() if "@" in handle else handle
            self._contact(CONTACT_PLACEHOLDERS[name], norm.lower() if name == "session" else norm)
            return handle
        if name in self.ident.addresses:
            currency, address, valid = self.ident.addresses[name]
            entry = {"currency": currency, "address": address, "valid": valid}
            if entry not in self.labels.crypto_addresses:
                self.labels.crypto_addresses.append(entry)
            return address
        raise KeyError(f"sample template placeholder {{{name}}} has no value")


def compatible_payments(rng: random.Random, entries: list[dict[str, Any]], k: int, fe: bool) -> list[dict]:
    """Up to ``k`` payment phrases that do not contradict each other ("XMR accepted" + "no Monero")."""
    chosen: list[dict[str, Any]] = []
    said: set[str] = {"escrow_bypass"} if fe else set()
    denied: set[str] = set()
    for entry in rng.sample(entries, len(entries)):
        hints, neg = set(entry["hints"]), set(entry.get("neg", []))
        if hints & denied or neg & said:
            continue
        chosen.append(entry)
        said |= hints
        denied |= neg
        if len(chosen) == k:
            break
    return chosen


# ============================================================================================ amounts


@dataclass
class Amount:
    """One written amount and what the label contract reads from it."""

    text: str
    grams: float | None = None
    units: int | None = None
    ml: float | None = None
    prefix: bool = False  # a unit count written before the name ("100x Xanax")


def mass_amount(rng: random.Random, grams: float, lang: str, allow_mg: bool) -> Amount:
    """A mass written the way vendors write it, with the grams the contract reads from it."""
    tpl = load_templates()
    comma = lang != "en" and rng.random() < 0.5
    conventional = CONVENTIONAL.get(grams)
    if conventional and (grams > 100 or (lang == "en" and rng.random() < 0.35)):
        text, value = rng.choice(conventional)
        return Amount(text, grams=value)
    if grams in MULTIPACK and rng.random() < 0.08:
        k, each = MULTIPACK[grams]
        return Amount(f"{k} x {_num(each, comma)}{rng.choice(tpl['mass_suffix'][lang])}", grams=k * each)
    if grams >= 1000 and grams % 1000 == 0 and rng.random() < 0.7:
        return Amount(f"{_num(grams / 1000)}{rng.choice(tpl['kilo'][lang])}", grams=grams)
    if grams < 1 and allow_mg and rng.random() < 0.6:  # a milligram amount of powder is a mass
        return Amount(f"{round(grams * 1000)}mg", grams=grams)
    suffix = rng.choice(tpl["mass_suffix"][lang])
    if grams == 1 and suffix in (" grams", " gramos", " grammes"):
        suffix = suffix[:-1]
    return Amount(f"{_num(grams, comma)}{suffix}", grams=grams)


def unit_amount(rng: random.Random, prod: dict[str, Any], n: int, lang: str, plain: bool = False) -> Amount:
    """A count of dosage units (pills, tabs, blotters, ampoules ...) as written, nested packs included."""
    tpl = load_templates()
    word = rng.choice(tpl["unit_words"][prod["unit"]][lang])
    if not plain and lang in tpl["sheet"]:
        if prod.get("sheet") and n == 100 and rng.random() < 0.6:
            return Amount(tpl["sheet"][lang], units=100)
        boxes = prod.get("boxes")
        if boxes and n % boxes == 0:
            k = n // boxes
            return Amount(f"{k} {tpl['boxes'][lang][0 if k == 1 else 1]} ({n} {word})", units=n)
        if prod["unit"] in ("pill", "tab") and n >= 20 and n % 10 == 0 and rng.random() < 0.1:
            strips, tabs = tpl["strips"][lang]
            return Amount(f"{n // 10} {strips} ({n} {tabs})", units=n)
        if prod["unit"] == "amp":
            return Amount(f"{n} {tpl['ampoules'][lang]}", units=n)
    style = rng.random()
    if plain or style < 0.4:
        return Amount(f"{n} {word}", units=n)
    if style < 0.75:
        return Amount(f"{n}x", units=n, prefix=True)
    return Amount(f"x{n}", units=n)


def liquid_amount(rng: random.Random, ml: float, lang: str) -> Amount:
    """A liquid volume as written, with the millilitres the contract reads from it."""
    if ml == 1000 and rng.random() < 0.6:
        return Amount(rng.choice(load_templates()["litre"].get(lang, ["1L"])), ml=1000)
    if ml == 500 and rng.random() < 0.3:
        return Amount("0.5L" if lang == "en" else "0,5L", ml=500)
    if ml == 473 and lang == "en" and rng.random() < 0.5:
        return Amount("16 fl oz", ml=473.12)  # fluid ounces are volume: 16 x 29.57 ml
    return Amount(f"{_num(ml)}{rng.choice(['ml', ' ml', 'ML'])}", ml=ml)


def dose_text(rng: random.Random, dose: str, lang: str) -> tuple[str, float]:
    """A per-unit strength as written ("150ug", "0,5 mg") and its value in milligrams."""
    m = re.fullmatch(r"([\d.]+)(mg|ug|mcg)", dose)
    if m is None:
        raise ValueError(f"bad dose {dose!r} in the sample templates")
    value = float(m.group(1))
    if m.group(2) == "mg":
        comma = lang != "en" and rng.random() < 0.5
        return f"{_num(value, comma)}{rng.choice(['mg', 'mg', ' mg', 'MG'])}", value
    unit = rng.choice(["ug", "µg", "mcg", " ug"]) if m.group(2) == "ug" else "mcg"
    return f"{_num(value)}{unit}", value / 1000


def amount_for(
    rng: random.Random, prod: dict[str, Any], tier: float, lang: str, plain: bool = False
) -> Amount:
    """The amount ``tier`` (grams, units or ml by the product's form) as written in ``lang``."""
    if prod["form"] == "mass":
        return mass_amount(rng, float(tier), lang, allow_mg=not plain or lang == "en")
    if prod["form"] == "unit":
        return unit_amount(rng, prod, int(tier), lang, plain=plain)
    if prod["form"] == "liquid":
        return liquid_amount(rng, float(tier), lang)
    raise ValueError(f"product {prod['key']} is not sold by amount")


def quantity_of(amount: Amount | None, dose_mg: float | None) -> dict[str, float | int | None]:
    return {
        "total_grams": amount.grams if amount else None,
        "units": amount.units if amount else None,
        "dose_mg": dose_mg,
        "volume_ml": amount.ml if amount else None,
    }


def price_usd(prod: dict[str, Any], tier: float) -> float:
    """A street-like price in USD: the unit price with a bulk discount."""
    base = float(prod["usd"])
    return base * tier**0.88 if tier > 1 else base * tier


def money(value: float, fmt: str) -> str:
    if value >= 100:
        value = round(value / 5) * 5
    elif value >= 10:
        value = round(value)
    else:
        value = round(value, 1)
    return fmt.format(p=_num(value))


def _btc(usd: float) -> str:
    """A USD price in BTC as markets show it (more decimals for cheap items)."""
    btc = usd / 62000.0
    return f"{btc:.4f}" if btc >= 0.001 else f"{btc:.6f}"


def _upper(text: str) -> str:
    """Upper case as vendors type it, keeping the micro sign (str.upper would turn µ into Greek Μ)."""
    return "µ".join(part.upper() for part in text.split("µ"))


# ============================================================================================ vendors


@dataclass
class Vendor:
    """A vendor of the sample world, with writing habits that recur across their listings."""

    name: str
    kind: str  # drug | fraud
    lang: str
    home: str
    products: list[str]
    origin_style: str  # exact | vague | eu
    to_style: str  # WW | EU | domestic | multi | empty
    style: str  # plain | caps | emoji | brackets
    fe_tag: bool
    obfuscates: bool
    tier_fmt: str
    currency: str
    layout: list[str]
    pay_p: float
    pay_entries: list[dict[str, Any]]
    contact_p: float
    contact_templates: list[str]
    signature: str
    mention_origin_p: float
    ident: Identity
    weight: float


def make_vendors(rng: random.Random, n: int) -> list[Vendor]:
    """The vendor pool of all markets (the first dozen sell on every market)."""
    tpl = load_templates()
    names: list[str] = []
    while len(names) < n:
        vn = tpl["vendor_names"]
        name = rng.choice(vn["first"]) + rng.choice(vn["second"]) + rng.choice(vn["suffix"])
        if name not in names:
            names.append(name)
    archetypes = tpl["archetypes"]
    vendors = []
    for i, name in enumerate(names):
        fraud = i >= 3 and rng.random() < 0.13
        lang = "en" if fraud else _pick(rng, {"en": 72, "de": 16, "nl": 12})
        homes = {
            "en": tpl["en_vendor_homes"],
            "de": {"DE": 60, "AT": 20, "CH": 20},
            "nl": {"NL": 80, "BE": 20},
        }
        home = _pick(rng, homes[lang])
        if fraud:
            products = rng.sample(tpl["fraud_products"], rng.randint(2, 5))
        else:
            archetype = archetypes[_pick(rng, {k: a["weight"] for k, a in archetypes.items()})]
            products = rng.sample(archetype["products"], min(len(archetype["products"]), rng.randint(3, 6)))
        origin_style = _pick(rng, {"exact": 60, "vague": 25, "eu": 15 if home in EUROPE else 0})
        to_weights = {
            "WW": 35,
            "EU": 25 if home in EUROPE else 0,
            "domestic": 20 if origin_style == "exact" else 0,
            "multi": 10,
            "empty": 10,
        }
        fe_tag = rng.random() < 0.08
        vendors.append(
            Vendor(
                name=name,
                kind="fraud" if fraud else "drug",
                lang=lang,
                home=home,
                products=products,
                origin_style=origin_style,
                to_style=_pick(rng, to_weights),
                style=_pick(rng, {"plain": 50, "caps": 15, "emoji": 20, "brackets": 15}),
                fe_tag=fe_tag,
                obfuscates=rng.random() < 0.12,
                tier_fmt=rng.choice(["{q} - {p}", "{q} = {p}", "{q} @ {p}", "{q}: {p}"]),
                currency={"GB": "£{p}", "US": "${p}", "CA": "${p}", "AU": "${p}"}.get(
                    home, "€{p}" if lang == "en" else "{p} €"
                ),
                layout=rng.sample(["ship", "pay", "refund"], 3),
                pay_p=rng.choice([0.0, 0.3, 0.6, 0.9]),
                pay_entries=compatible_payments(rng, tpl["payments"][lang], rng.randint(2, 4), fe_tag),
                contact_p=rng.choice([0.0, 0.0, 0.2, 0.5]),
                contact_templates=rng.sample(tpl["contacts_listing"][lang], 2),
                signature=rng.choice(tpl["signatures"][lang]),
                mention_origin_p={"exact": 0.25, "vague": 0.5, "eu": 0.45}[origin_style],
                ident=make_identity(rng, name, home),
                weight=rng.lognormvariate(0, 0.8) * (1.6 if fraud else 1.0),
            )
        )
    return vendors


# ============================================================================================ listings


@dataclass
class Listing:
    """One generated market listing, before it is written in a market's own format."""

    vendor: str
    lang: str
    title: str
    paragraphs: list[str]
    category: str
    price_usd: float
    ships_from_field: str
    ships_to_field: str
    posted: datetime
    labels: Labels
    native: str = ""
    mark: str | None = None  # a bad or messy kind when this slot is deliberately broken
    mojibake: bool = False

    @property
    def bad(self) -> bool:
        return self.mark is not None and not self.mark.endswith("_messy")


class World:
    """State of one generation run: the rng, templates, products and the vendor pool."""

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.tpl = load_templates()
        self.products: dict[str, dict[str, Any]] = {p["key"]: p for p in self.tpl["products"]}
        self.by_code: dict[str, list[str]] = {}
        for p in self.tpl["products"]:
            for c in p["codes"]:
                self.by_code.setdefault(c, []).append(p["key"])
        self.drug_keys = [k for k, p in self.products.items() if p["codes"] != [NON_DRUG]]
        self.vendors = make_vendors(self.rng, 110)

    def market_vendors(self, market: str) -> list[tuple[Vendor, str]]:
        """About 40 vendors of one market and the name each uses there (shared vendors sometimes vary it)."""
        rng = self.rng
        out = []
        for i, v in enumerate(self.vendors[:12] + rng.sample(self.vendors[12:], 28)):
            name = v.name
            if i < 12 and rng.random() < 0.25:
                name += rng.choice(["_" + market.upper(), "Official", "2", "_Back"])
            out.append((v, name))
        return out

    def category(self, market: str, keys: list[str]) -> str:
        """The market's own category path (parts joined by "/"); a few are deliberately coarse."""
        cats = self.tpl["categories"]
        mk = "ob" if market == "ks" else market
        if len(keys) > 1:
            return str(cats["bundle"][mk])
        prod = self.products[keys[0]]
        if prod.get("coarse") and self.rng.random() < 0.25:
            return str(cats[f"coarse_{prod['coarse']}"][mk])
        return str(cats[prod["family"]][mk])

    def country_field(self, market: str, cc: str) -> str:
        """How a market's ships-from/to field names a country (Kaggle style "USA", "UK" ...)."""
        countries = self.tpl["countries"]
        variants = countries[cc]["field"] if cc in countries else [self.tpl["extra_country_names"][cc]]
        if market == "ag":
            return {"US": "USA", "GB": "UK"}.get(cc, variants[0])
        if market == "ns":
            return str(variants[0])
        if market in ("ob", "ks"):
            return str(self.rng.choice([cc, variants[0]]))
        return str(self.rng.choice(variants))

    def shipping(
        self, market: str, v: Vendor, lang: str, digital: bool, labels: Labels
    ) -> tuple[str, str, list]:
        """Ships-from/to fields and shipping sentences; sets what an expert concludes from both."""
        rng = self.rng
        phr = self.tpl["listing"][lang]
        if digital:
            from_field = rng.choice(["Internet", "Worldwide", "Torland", ""])
            to_field = rng.choice(["Worldwide", "Internet", "Worldwide", ""])
            labels.ships_to = ["WW"] if to_field == "Worldwide" else []
            return from_field, to_field, []
        sentences: list[str] = []
        country = self.tpl["countries"][v.home]
        if v.origin_style == "exact":
            from_field = self.country_field(market, v.home)
            labels.ships_from = [v.home]
        elif v.origin_style == "vague":  # Worldwide, Torland, Internet, empty: no origin
            from_field = rng.choice(self.tpl["vague_origin"])
            labels.ships_from = []
        else:
            from_field = rng.choice(self.tpl["eu_origin"])
            labels.ships_from = ["EU"]
        if rng.random() < v.mention_origin_p:  # the text names the dispatch place: it wins over a vague field
            if rng.random() < 0.35:
                sentences.append(rng.choice(phr["from_city"]).format(city=rng.choice(country["cities"])))
            else:
                sentences.append(rng.choice(phr["from_country"]).format(country=country[lang]))
            labels.ships_from = [v.home]
        if v.to_style == "WW":
            to_field = rng.choice(["Worldwide", "Worldwide", "World Wide", "WW"])
            labels.ships_to = ["WW"]
        elif v.to_style == "EU":
            to_field = rng.choice(["Europe", "EU", "European Union", "EU only"])
            labels.ships_to = ["EU"]
        elif v.to_style == "domestic":
            to_field = self.country_field(market, v.home)
            labels.ships_to = [v.home]
        elif v.to_style == "multi":
            dests = [v.home] + self.tpl["neighbours"].get(v.home, [])[: rng.randint(1, 2)]
            to_field = ", ".join(self.country_field(market, c) for c in dests)
            labels.ships_to = dests
        else:
            to_field = ""
            labels.ships_to = []
            if rng.random() < 0.5:
                key = rng.choice(["to_WW", "to_EU"] if v.home in EUROPE else ["to_WW"])
                sentences.append(rng.choice(phr[key]))
                labels.ships_to = ["WW" if key == "to_WW" else "EU"]
        if v.to_style in ("WW", "EU", "domestic") and rng.random() < 0.25:
            key = {"WW": "to_WW", "EU": "to_EU", "domestic": "to_domestic"}[v.to_style]
            sentences.append(rng.choice(phr[key]).format(country=country[lang]))
        return from_field, to_field, sentences

    def product_name(self, prod: dict[str, Any], v: Vendor) -> str:
        if v.obfuscates and prod.get("obf") and self.rng.random() < 0.6:
            return str(self.rng.choice(prod["obf"]))
        return str(self.rng.choice(prod["names"]))

    def blurbs(self, prod: dict[str, Any], lang: str) -> list[str]:
        own = self.tpl["product_blurbs"].get(prod["key"])
        pool = own[lang] if own else self.tpl["blurbs"][prod["codes"][0]][lang]
        return self.rng.sample(pool, self.rng.randint(1, min(2, len(pool))))

    def title(self, prod: dict[str, Any], name: str, amount: Amount | None, dose: str, adj: str) -> str:
        rng = self.rng
        named = f"{name} {dose}".strip()
        if prod["form"] == "unit" and prod["unit"] == "amp" and dose and amount is not None:
            return f"{name} {dose}/{rng.choice(prod.get('amp_ml', [1]))}ml – {amount.text}"
        if amount is None:
            return rng.choice([named, f"{named} – {adj}", f"{adj} {named}", f"{named} | {adj}"])
        q = amount.text
        wrapped = f"{named} - {q}" if "(" in q else f"{named} ({q})"
        if prod["form"] == "unit":
            if amount.prefix:
                return rng.choice([f"{q} {named}", f"{q} {named} – {adj}"])
            return rng.choice([f"{named} {q}", f"{named} - {q}", wrapped, f"{named} {q} | {adj}"])
        return rng.choice(
            [
                f"{q} {named}",
                f"{named} {q}",
                f"{named} - {q}",
                f"{named} | {q} | {adj}",
                f"{adj} {named} {q}",
                wrapped,
            ]
        )

    def build_listing(self, market: str, v: Vendor, vname: str, keys: list[str], posted: datetime) -> Listing:
        """One listing of ``keys`` (one product, or two for a bundle) by vendor ``v``, with its labels."""
        rng = self.rng
        prods = [self.products[k] for k in keys]
        primary = prods[0]
        non_drug = primary["codes"] == [NON_DRUG]
        digital = non_drug and primary["key"] not in self.tpl["physical_non_drug"]
        lang = "en" if non_drug else v.lang
        phr = self.tpl["listing"][lang]
        labels = Labels(drug_types=sorted({c for p in prods for c in p["codes"]}))
        filler = Filler(v.ident, rng, labels)
        adj = rng.choice(self.tpl["digital_adjectives"] if digital else phr["adjectives"])
        tiers_shown: list[tuple[Amount, float]] = []
        title_amount: Amount | None = None
        dose_mg: float | None = None

        if len(prods) > 1:  # a bundle: the first-named component is the primary offer
            parts, names, price = [], [], 0.0
            for i, p in enumerate(prods):
                tier = rng.choice(p["tiers"][:3])
                amount = amount_for(rng, p, tier, lang, plain=p["form"] == "unit")
                pname = self.product_name(p, v)
                names.append(pname)
                if i == 0:
                    title_amount = amount
                    if p["form"] == "unit" and p.get("doses") and rng.random() < 0.5:
                        dtext, dose_mg = dose_text(rng, rng.choice(p["doses"]), lang)
                        pname = f"{pname} {dtext}"
                parts.append(f"{amount.text} {pname}")
                price += price_usd(p, tier)
            title = f"{rng.choice(self.tpl['bundle_words'][lang])}: {' + '.join(parts)}"
            labels.quantity = quantity_of(title_amount, dose_mg)
            intro = self.tpl["bundle_intro"][lang].format(a=names[0], b=names[1])
        elif non_drug:
            name = self.product_name(primary, v)
            title = rng.choice([name, f"{name} – {adj}", f"{adj} {name}"]) if v.style != "plain" else name
            price = float(primary["usd"]) * rng.uniform(0.6, 1.5)
            intro = rng.choice(phr["intro"]).format(name=name, adj_lower=adj.lower())
        else:
            name = self.product_name(primary, v)
            mode = _pick(rng, {"title": 70, "tiers": 18, "none": 12})
            dose = ""
            with_dose = primary.get("dose_required") or rng.random() < 0.8
            if primary["form"] == "unit" and primary.get("doses") and with_dose:
                dose, dose_mg = dose_text(rng, rng.choice(primary["doses"]), lang)
                dose += primary.get("dose_suffix", "")
            tiers = primary["tiers"]
            start = rng.randrange(len(tiers))
            chosen = tiers[start : start + rng.randint(1, 4)]
            if mode == "tiers" and len(chosen) < 2:
                chosen = tiers[max(0, start - 1) : start + 2]
            amounts = [(amount_for(rng, primary, t, lang), float(t)) for t in chosen]
            if mode == "title":  # the title names the primary offer
                title_amount, t_value = rng.choice(amounts)
                price = price_usd(primary, t_value)
                if rng.random() < 0.45:
                    tiers_shown = amounts
                labels.quantity = quantity_of(title_amount, dose_mg)
            elif mode == "tiers":  # no amount in the title: the smallest tier in the text
                tiers_shown = amounts
                price = price_usd(primary, amounts[0][1])
                labels.quantity = quantity_of(amounts[0][0], dose_mg)
            else:
                price = price_usd(primary, chosen[0])
                labels.quantity = quantity_of(None, dose_mg)
            title = self.title(primary, name, title_amount, dose, adj)
            intro = rng.choice(phr["intro"]).format(name=name, adj_lower=adj.lower())
        price *= rng.uniform(0.85, 1.2)

        if v.style == "caps":
            title = _upper(title)
        elif v.style == "emoji":
            title = (
                f"{rng.choice(['🔥', '✅', '💎', '⭐'])} {title} {rng.choice(['🔥', '🚀', '💯', ''])}".strip()
            )
        elif v.style == "brackets":
            title = f"[{_upper(adj)}] {title}"
        if v.fe_tag and not non_drug:  # "FE" (finalize early) in the title is an escrow-bypass hint
            title = f"{title} {rng.choice(['[FE]', '(FE ok)', '- FE'])}"
            filler.add_hints(["escrow_bypass"])

        blurbs = [b for p in prods for b in self.blurbs(p, lang)]
        filler.add_hints(self.tpl["product_hints"].get(primary["key"], []))
        paragraphs = [" ".join([intro, *blurbs])]
        if tiers_shown:
            lines = [rng.choice(phr["tiers_header"])]
            lines += [
                v.tier_fmt.format(q=a.text, p=money(price_usd(primary, t), v.currency))
                for a, t in tiers_shown
            ]
            paragraphs.append("\n".join(lines))
        if title_amount is not None and len(prods) == 1 and rng.random() < 0.1:
            # free samples and minimum orders are not the offer
            small = amount_for(rng, primary, primary["tiers"][0], lang, plain=True)
            paragraphs.append(rng.choice(phr["distractor"]).format(free=small.text, min=small.text))
        from_field, to_field, ship = self.shipping(market, v, lang, digital, labels)
        if not digital:
            ship.append(rng.choice(phr["stealth"]))
            if rng.random() < 0.5:
                ship.append(rng.choice(phr["processing"]))
        pay = []
        if rng.random() < v.pay_p:
            for entry in rng.sample(v.pay_entries, min(len(v.pay_entries), rng.randint(1, 2))):
                pay.append(filler.fill(entry["text"], hints=entry["hints"]))
        if rng.random() < v.contact_p:
            pay.append(filler.fill(rng.choice(v.contact_templates)))
        refund = rng.choice(phr["refund"]) if not digital and rng.random() < 0.4 else ""
        blocks = {"ship": " ".join(ship), "pay": " ".join(pay), "refund": refund}
        paragraphs += [blocks[key] for key in v.layout if blocks[key]]
        paragraphs.append(v.signature.format(vendor=vname))
        return Listing(
            vendor=vname,
            lang=lang,
            title=title,
            paragraphs=paragraphs,
            category=self.category(market, keys),
            price_usd=round(price, 2),
            ships_from_field=from_field,
            ships_to_field=to_field,
            posted=posted,
            labels=labels,
        )

    def market_listings(self, market: str, n: int, marks: dict[str, int]) -> list[Listing]:
        """``n`` listings of one market; the first cover every code, random later slots get the ``marks``."""
        rng = self.rng
        vendors = self.market_vendors(market)
        drug_vendors = [(v, nm) for v, nm in vendors if v.kind == "drug"]
        fraud_vendors = [(v, nm) for v, nm in vendors if v.kind == "fraud"] or vendors[:1]
        en_vendors = [(v, nm) for v, nm in drug_vendors if v.lang == "en"] or drug_vendors
        weights = [v.weight for v, _ in vendors]
        drug_weights = [self.products[k]["weight"] for k in self.drug_keys]
        codes = [*DRUG_CODES, NON_DRUG]
        posted = START
        out: list[Listing] = []
        for i in range(n):
            posted += timedelta(minutes=rng.randint(20, 600))
            if i < len(codes):  # coverage: every code appears in every market
                keys = [rng.choice(self.by_code[codes[i]])]
                if codes[i] == NON_DRUG:
                    v, vname = rng.choice(fraud_vendors)
                    keys = [rng.choice(v.products)] if v.kind == "fraud" else keys
                else:
                    v, vname = rng.choice(drug_vendors)
            else:
                v, vname = rng.choices(vendors, weights=weights)[0]
                r = rng.random()
                if v.kind == "fraud":
                    keys = [rng.choice(v.products)]
                elif r < 0.035:
                    keys = list(rng.choice(self.tpl["bundles"]))
                elif r < 0.07:  # drug vendors writing in English also sell scales, bags, test kits ...
                    v, vname = rng.choice(en_vendors)
                    keys = [rng.choice(self.tpl["paraphernalia"])]
                elif r < 0.88:
                    keys = [rng.choice(v.products)]
                else:
                    keys = [rng.choices(self.drug_keys, weights=drug_weights)[0]]
            out.append(self.build_listing(market, v, vname, keys, posted))
        first = min(len(codes), n)
        kinds = [k for k, c in sorted(marks.items()) for _ in range(c)]
        for slot, kind in zip(rng.sample(range(first, n), min(len(kinds), n - first)), kinds, strict=False):
            out[slot].mark = kind
        return out


# ============================================================================================ ads


@dataclass
class Ad:
    """One messenger message (an offer or not) with its labels; ``header`` is its bold first line."""

    text: str
    header: str | None
    labels: Labels
    category: str  # offer | rules | harm | news | buyer | scam | chat


def build_ad(world: World, profile: dict[str, Any], ident: Identity, offer: bool) -> Ad:
    """A channel message in the profile's language: a menu or single offer, or a non-offer message."""
    rng = world.rng
    tpl = world.tpl
    lang = profile["lang"]
    phr = tpl["ads"][lang]
    extra = tpl.get("ads_extra", {}).get(lang, {})
    labels = Labels()
    filler = Filler(ident, rng, labels)
    specialty = profile["specialty"]
    if not offer:
        category = _pick(rng, {"rules": 20, "harm": 18, "news": 15, "buyer": 20, "scam": 10, "chat": 17})
        entry = rng.choice(phr["nonoffer"][category] + extra.get("nonoffer", {}).get(category, []))
        labels.is_offer = False
        values = _nonoffer_values(world, profile, rng.sample(specialty, 2))
        text = filler.fill(entry["text"], values, hints=entry.get("hints", []))
        return Ad(text, None, labels, category)
    if extra.get("bare") and rng.random() < 0.12:  # an offer without amounts or prices
        return _bare_offer(world, profile, filler, labels, extra["bare"])
    if extra.get("combo") and rng.random() < 0.08:  # two products for one price
        return _combo_offer(world, profile, filler, labels, extra["combo"])

    keys = rng.sample(specialty, 1 if rng.random() < 0.25 else rng.randint(2, min(5, len(specialty))))
    if len(keys) > 1 and rng.random() < 0.1:  # now and then something outside the channel's usual range
        extra = rng.choice(tpl["ad_extras"])
        keys += [] if extra in keys else [extra]
    items = []
    for key in keys:
        prod = world.products[key]
        name = rng.choice((prod.get("local") or {}).get(lang) or prod["names"])
        dose_mg = None
        if prod["form"] == "unit" and prod.get("doses") and rng.random() < 0.5:
            dtext, dose_mg = dose_text(rng, rng.choice(prod["doses"]), lang)
            name = f"{name} {dtext}"
        retail = prod["tiers"][:5]
        start = rng.randrange(max(1, len(retail) - 1))
        tiers = retail[start : start + rng.randint(1, 3)]
        amounts = [amount_for(rng, prod, t, lang, plain=True) for t in tiers]
        joined = rng.choice([" / ", " | ", ", "]).join(
            f"{a.text} - {money(price_usd(prod, t) * profile['rate'], profile['currency'])}"
            for a, t in zip(amounts, tiers, strict=True)
        )
        rank = {"mass": 0, "unit": 1, "liquid": 2}[prod["form"]]
        items.append((rank, float(tiers[0]), key, name, joined, amounts[0], dose_mg))
    items.sort(key=lambda it: (it[0], it[1]))  # menus are written smallest first
    labels.quantity = quantity_of(items[0][5], items[0][6])
    labels.drug_types = sorted({c for it in items for c in world.products[it[2]]["codes"]})

    lines: list[str] = []
    header = None
    if len(items) == 1:
        lines.append(rng.choice(phr["single"]).format(name=items[0][3], tiers=items[0][4]))
    else:
        if rng.random() < 0.8:
            header = rng.choice(phr["headers"]).format(shop=profile["shop"])
            lines.append(header)
        for _rank, _tier, key, name, joined, _amount, _dose in items:
            lines.append(f"{rng.choice(tpl['emoji'][world.products[key]['codes'][0]])} {name} {joined}")
    grown = [g["text"] for g in profile.get("grown", []) if g["for"] in keys]
    if grown and rng.random() < 0.5:  # a flag naming where a product was grown: not the origin
        lines.append(rng.choice(grown))
    city = rng.choice(profile["cities"])
    city = city if isinstance(city, dict) else {"nom": city}
    values = {
        "flag": tpl["countries"].get(profile["country"], {}).get("flag", ""),
        "city": city["nom"],
        "city_loc": str(city.get("loc", city["nom"])),
        "city_gen": str(city.get("gen", city["nom"])),
    }
    where = rng.random()
    local = 0.45 <= where < 0.65
    if where < 0.45:
        lines.append(filler.fill(rng.choice(profile["origin"]), values))
        labels.ships_from = [profile["country"]]
    elif local:  # local delivery in a city: origin and destination are its country
        lines.append(filler.fill(rng.choice(profile["local"]), values))
        labels.ships_from = [profile["country"]]
        labels.ships_to = [profile["country"]]
    if not local and rng.random() < 0.3:
        dest = rng.choice(profile["dest"])
        lines.append(dest["text"])
        labels.ships_to = list(dest["to"])
    if rng.random() < 0.5:
        lines.append(rng.choice(phr["delivery"]))
    if rng.random() < 0.6:
        entry = rng.choice(tpl["payments"][lang])
        lines.append(filler.fill(entry["text"], hints=entry["hints"]))
    if rng.random() < 0.85:
        lines.append(filler.fill(rng.choice(phr["contact"])))
    if rng.random() < 0.4:
        tags = " ".join("#" + tpl["hashtags"][world.products[it[2]]["codes"][0]] for it in items[:3])
        lines.append(filler.fill(rng.choice(phr["footer"]), {"hashtags": tags}))
    return Ad("\n".join(lines), header, labels, "offer")


def _local_name(world: World, key: str, lang: str, mid_sentence: bool = False) -> str:
    """A product's name as written in ``lang`` (lower-cased inside a sentence, German nouns not)."""
    prod = world.products[key]
    name = str(world.rng.choice((prod.get("local") or {}).get(lang) or prod["names"]))
    first = name.split()[0]
    if mid_sentence and lang != "de" and not (first.isupper() or any(c.isdigit() for c in first)):
        name = name[0].lower() + name[1:]
    return name


def _nonoffer_values(world: World, profile: dict[str, Any], keys: list[str]) -> dict[str, str]:
    """Placeholder values of a non-offer message: drug names, amounts and a city that offer nothing."""
    rng = world.rng
    lang = profile["lang"]
    city = rng.choice(profile["cities"])
    city = city if isinstance(city, dict) else {"nom": city}
    return {
        "drug": _local_name(world, keys[0], lang, mid_sentence=True),
        "drug2": _local_name(world, keys[1], lang, mid_sentence=True),
        "n": str(rng.choice([1, 2, 3, 5, 10])),
        "big": str(rng.choice([40, 120, 300, 800, 1500])),
        "city": city["nom"],
        "city_loc": city.get("loc", city["nom"]),
    }


def _bare_offer(
    world: World, profile: dict[str, Any], filler: Filler, labels: Labels, templates: list[str]
) -> Ad:
    """An offer naming one or two products without amounts or prices; its quantity is null."""
    rng = world.rng
    lang = profile["lang"]
    phr = world.tpl["ads"][lang]
    keys = rng.sample(profile["specialty"], 2)
    values = {"name": _local_name(world, keys[0], lang), "name2": _local_name(world, keys[1], lang)}
    template = rng.choice(templates)
    used = keys if "{name2}" in template else keys[:1]
    labels.drug_types = sorted({c for k in used for c in world.products[k]["codes"]})
    lines = [filler.fill(template, values)]
    if rng.random() < 0.5:
        lines.append(rng.choice(phr["delivery"]))
    lines.append(filler.fill(rng.choice(phr["contact"])))
    return Ad("\n".join(lines), None, labels, "offer")


def _combo_offer(
    world: World, profile: dict[str, Any], filler: Filler, labels: Labels, words: list[str]
) -> Ad:
    """A deal of two products for one price; the first-named product's amount is the offer."""
    rng = world.rng
    lang = profile["lang"]
    phr = world.tpl["ads"][lang]
    keys = rng.sample(profile["specialty"], 2)
    parts, amounts, price = [], [], 0.0
    for key in keys:
        prod = world.products[key]
        tier = prod["tiers"][0]
        amount = amount_for(rng, prod, tier, lang, plain=True)
        amounts.append(amount)
        parts.append(f"{amount.text} {_local_name(world, key, lang)}")
        price += price_usd(prod, tier)
    deal = money(price * 0.85 * profile["rate"], profile["currency"])
    labels.drug_types = sorted({c for k in keys for c in world.products[k]["codes"]})
    labels.quantity = quantity_of(amounts[0], None)
    mark = rng.choice(["🎉", "🔥", "💥", ""])
    lines = [f"{mark} {rng.choice(words)}: {' + '.join(parts)} = {deal}".strip()]
    if rng.random() < 0.5:
        lines.append(rng.choice(phr["delivery"]))
    lines.append(filler.fill(rng.choice(phr["contact"])))
    return Ad("\n".join(lines), None, labels, "offer")


_ENTITY_RE = re.compile(
    r"(?P<link>(?:https?://)?t\.me/[A-Za-z0-9_]+)"
    r"|(?P<mention>(?<![\w.])@[A-Za-z][A-Za-z0-9_]{3,})"
    r"|(?P<hashtag>(?<!\w)#[^\W\d_]\w*)"
)


def telegram_text(rng: random.Random, ad: Ad, entities: bool) -> tuple[str | list[Any], list[dict[str, str]]]:
    """``text`` and ``text_entities`` of a Telegram export message: a plain string or a list with entities."""
    parts: list[dict[str, str]] = []
    body = ad.text
    if ad.header and body.startswith(ad.header):
        parts.append({"type": "bold", "text": ad.header})
        body = body[len(ad.header) :]
    pos = 0
    for m in _ENTITY_RE.finditer(body):
        if m.start() > pos:
            parts.append({"type": "plain", "text": body[pos : m.start()]})
        parts.append({"type": m.lastgroup or "plain", "text": m.group()})
        pos = m.end()
    if pos < len(body):
        parts.append({"type": "plain", "text": body[pos:]})
    if entities and ad.category == "offer" and rng.random() < 0.3:
        href = f"https://telegra.ph/menu-{rng.randint(100, 999)}"
        parts += [
            {"type": "plain", "text": "\n"},
            {"type": "text_link", "text": "📋 Full menu", "href": href},
        ]
    if not entities or all(p["type"] == "plain" for p in parts):
        return ad.text, [{"type": "plain", "text": ad.text}]
    return [p["text"] if p["type"] == "plain" else dict(p) for p in parts], parts


# ============================================================================================ renderers


def _entities(rng: random.Random, text: str) -> str:
    """HTML-escape text and write some characters as named entities, as market software does."""
    out = html.escape(text, quote=True)
    for char, entity in (("–", "&ndash;"), ("€", "&euro;"), ("£", "&pound;"), ("é", "&eacute;")):
        if char in out and rng.random() < 0.7:
            out = out.replace(char, entity)
    return out


def _desc_html(rng: random.Random, paragraphs: list[str]) -> str:
    return "".join(f"<p>{_entities(rng, p).replace(chr(10), '<br>')}</p>" for p in paragraphs)


def nightshade_page(rng: random.Random, lst: Listing, related: list[Listing]) -> str:
    """A Nightshade listing page: the listing block inside navigation, sidebar and scripts."""
    crumbs = "".join(f"<li>{_entities(rng, part)}</li>" for part in lst.category.split("/"))
    rel = "".join(
        f'<li><a href="/listing/{r.native}">{_entities(rng, r.title)}</a> '
        f'<span class="mini-price">${r.price_usd:.2f}</span></li>'
        for r in related
    )
    state = {
        "cart": 0,
        "featured": related[0].title if related else "",
        "csrf": f"{rng.getrandbits(64):016x}",
    }
    vendor = html.escape(lst.vendor)
    title = _entities(rng, lst.title)
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            '<meta name="generator" content="nightshade-market">',
            f"<title>{title} | Nightshade Market</title>",
            f'<link rel="stylesheet" href="/static/css/ns.{rng.getrandbits(16):04x}.css">',
            f"<script>window.__NS_STATE = {json.dumps(state, ensure_ascii=False)};</script>",
            "</head>",
            "<body>",
            '<header class="topbar">',
            '<a class="logo" href="/">Nightshade</a>',
            '<nav class="main-nav"><a href="/c/drugs">Drugs</a> <a href="/c/digital">Digital Goods</a> '
            '<a href="/c/fraud">Fraud</a> <a href="/c/services">Services</a> '
            '<a href="/forum">Forum</a></nav>',
            '<div class="user-box"><a href="/login">Login</a> | <a href="/register">Register</a> | '
            '<a href="/support">Support</a></div>',
            '<form class="search" action="/search"><input name="q" placeholder="Search listings&hellip;">'
            "<button>Go</button></form>",
            "</header>",
            '<div class="notice">Always verify the mirror signature before you log in. '
            "Never finalize early unless you trust the vendor.</div>",
            "<main>",
            f'<div class="listing" data-listing-id="{lst.native}">',
            f'<ul class="breadcrumbs">{crumbs}</ul>',
            f'<h1 class="listing-title">{title}</h1>',
            f'<div class="vendor-box">Sold by <a class="vendor-name" href="/vendor/{vendor}">{vendor}</a> '
            f'<span class="vendor-level">Level {rng.randint(1, 9)}</span> '
            f'(<span class="vendor-rating">{rng.uniform(91, 100):.1f}%</span>)</div>',
            f'<div class="buy-box"><span class="price" data-currency="USD">{lst.price_usd:.2f}</span> '
            '<select name="qty"><option>1</option><option>2</option></select> '
            '<button class="buy">Add to cart</button></div>',
            '<table class="shipping">'
            f"<tr><th>Ships from</th><td>{html.escape(lst.ships_from_field)}</td></tr>"
            f"<tr><th>Ships to</th><td>{html.escape(lst.ships_to_field)}</td></tr></table>",
            f'<div class="description">{_desc_html(rng, lst.paragraphs)}</div>',
            f'<time class="posted" datetime="{_iso(lst.posted)}">{lst.posted.strftime("%d %b %Y")}</time>',
            "</div>",
            f'<aside class="related"><h3>Other listings you may like</h3><ul>{rel}</ul></aside>',
            "</main>",
            '<footer><p>&copy; 2025 Nightshade &middot; <a href="/faq">FAQ</a> &middot; '
            '<a href="/pgp">PGP</a> &middot; <a href="/canary">Canary</a></p></footer>',
            '<script src="/static/js/ns.min.js"></script>',
            "</body>",
            "</html>",
            "",
        ]
    )


def nightshade_empty(rng: random.Random, native: str, variant: int) -> str:
    """A Nightshade page with no text at all: a removed listing, or the captcha page of the DDoS queue."""
    head = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="generator" content="nightshade-market"><title></title></head>\n'
    )
    if variant % 2 == 0:
        return (
            f'{head}<body><main><div class="listing" data-listing-id="{native}"><ul class="breadcrumbs"></ul>'
            '<h1 class="listing-title"></h1>\n<div class="description"></div></div></main>\n</body></html>\n'
        )
    return (
        f'{head}<body><div class="queue"><img src="/static/captcha/{rng.getrandbits(32):08x}.png" alt="">'
        '<form action="/queue"><input name="c"><input type="submit" value="&#10003;"></form></div>'
        "</body></html>\n"
    )


def velvet_page(rng: random.Random, lst: Listing) -> str:
    """A Velvet Bazaar product page (price in BTC), with menu, announcement and reviews around it."""
    crumbs = " &raquo; ".join(["Home", *(_entities(rng, p) for p in lst.category.split("/"))])
    reviews = "".join(f"<li>{html.escape(r)}</li>" for r in rng.sample(load_templates()["reviews"], 3))
    title = _entities(rng, lst.title)
    details = (
        f"<dt>Vendor</dt><dd>{html.escape(lst.vendor)}</dd>"
        f"<dt>Price</dt><dd>{_btc(lst.price_usd)} BTC</dd>"
        f"<dt>Origin country</dt><dd>{html.escape(lst.ships_from_field)}</dd>"
        f"<dt>Ships to</dt><dd>{html.escape(lst.ships_to_field)}</dd>"
        f"<dt>Listed</dt><dd>{lst.posted.strftime('%Y-%m-%d')}</dd>"
    )
    return "\n".join(
        [
            "<!doctype html>",
            "<html>",
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{title} - Velvet Bazaar</title>",
            "<style>body.velvet-bazaar{background:#1b0f1f;color:#eee} .product-name{font-size:1.4em}</style>",
            "</head>",
            '<body class="velvet-bazaar">',
            '<div id="vb-header"><span class="brand">Velvet Bazaar</span>',
            '<ul class="menu"><li><a href="/">Home</a></li><li><a href="/orders">Orders</a></li>'
            '<li><a href="/wallet">Wallet (0.0000 BTC)</a></li><li><a href="/messages">Messages</a></li>'
            '<li><a href="/logout">Log out</a></li></ul></div>',
            '<div class="announcement">Withdrawals may be delayed during maintenance. '
            "Use PGP for every message.</div>",
            f'<nav class="crumbs">{crumbs}</nav>',
            f'<article class="product" id="{lst.native}">',
            f'<h2 class="product-name">{title}</h2>',
            f'<div class="gallery"><img src="/img/{lst.native}_1.jpg" alt="product photo"></div>',
            f'<dl class="details">{details}</dl>',
            f'<section class="product-description">{_desc_html(rng, lst.paragraphs)}</section>',
            "</article>",
            f'<section class="reviews"><h3>Feedback</h3><ul>{reviews}</ul></section>',
            '<footer>Velvet Bazaar &copy; 2025 &middot; <a href="/rules">Rules</a> &middot; '
            '<a href="/mirrors">Mirrors</a></footer>',
            "</body>",
            "</html>",
            "",
        ]
    )


def velvet_empty(native: str, variant: int) -> str:
    """A Velvet page without product text, or a zero-byte file (the scraper saved nothing)."""
    if variant % 3 == 2:
        return ""
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title></title></head>\n'
        '<body class="velvet-bazaar"><nav class="crumbs"></nav>\n'
        f'<article class="product" id="{native}"><h2 class="product-name"></h2><dl class="details"></dl>'
        '<section class="product-description"></section></article>\n</body></html>\n'
    )


def _csv_line(row: Sequence[Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(row)
    return buf.getvalue()


def generic_row(rng: random.Random, lst: Listing, item_id: str, market: str) -> dict[str, Any]:
    """A listing in the generic JSONL format (fields vary: some rows carry only ``text``)."""
    desc = "\n\n".join(lst.paragraphs)
    row: dict[str, Any] = {"id": item_id, "kind": "listing", "market": market, "vendor": lst.vendor}
    if rng.random() < 0.12:
        row["text"] = f"{lst.title}\n\n{desc}"
    else:
        row["title"] = lst.title
        row["description"] = desc
    row["category"] = lst.category
    if lst.ships_from_field or rng.random() < 0.5:
        row["ships_from"] = lst.ships_from_field
    if lst.ships_to_field or rng.random() < 0.5:
        row["ships_to"] = lst.ships_to_field
    currency = rng.choice(["USD", "EUR", "USD"])
    row["price"] = round(lst.price_usd * (0.92 if currency == "EUR" else 1.0), 2)
    row["currency"] = currency
    row["posted_at"] = lst.posted.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    return row


# ============================================================================================ writing


class Writer:
    """Writes files and collects truth lines, bad, messy and skipped items, and counts."""

    def __init__(self, sample: Path) -> None:
        self.sample = sample
        self.truth: list[dict[str, Any]] = []
        self.bad: list[dict[str, Any]] = []
        self.messy: list[dict[str, Any]] = []
        self.skipped: list[dict[str, Any]] = []
        self.counts: dict[str, int] = {}

    def write(self, rel: str, data: str | bytes) -> None:
        path = self.sample / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)

    def add_bad(
        self, item_id: str | None, source: str, rel: str, locator: str, stage: str, reason: str, detail: str
    ) -> None:
        """A deliberately broken item; ``reason`` is what ``stage`` (ingest|clean) should give."""
        self.bad.append(
            {
                "id": item_id,
                "source": source,
                "file": f"{SAMPLE_DIR}/{rel}",
                "locator": locator,
                "stage": stage,
                "reason": reason,
                "detail": detail,
            }
        )

    def add_truth(
        self,
        item_id: str,
        source: str,
        kind: str,
        market: str,
        vendor: str,
        lang: str,
        labels: Labels,
        messy: str | None = None,
    ) -> None:
        self.truth.append(
            labels.truth(id=item_id, source=source, kind=kind, market=market, vendor=vendor, lang=lang)
        )
        if messy:
            self.messy.append({"id": item_id, "source": source, "kind": messy})


def _maybe_mojibake(rng: random.Random, lst: Listing) -> None:
    """Now and then store a good listing's description as mojibake (still a good, labelled item)."""
    if not lst.bad and rng.random() < 0.03:
        broken = [mojibake(p) for p in lst.paragraphs]
        if any(b is not None for b in broken):
            lst.paragraphs = [b if b is not None else p for b, p in zip(broken, lst.paragraphs, strict=True)]
            lst.mojibake = True


def _messy(lst: Listing) -> str | None:
    """The messy-item kind of a good listing, for the manifest."""
    if lst.mark and lst.mark.endswith("_messy"):
        return lst.mark.removesuffix("_messy")
    return "mojibake" if lst.mojibake else None


def bad_budget(params: SampleParams, n_messenger: int, n_extra: int) -> dict[str, int]:
    """How many bad items of each kind: ``bad_fraction`` of all items, the one-off kinds first."""
    total = (
        4 * params.listings_per_market + len(AD_LANGS) * params.messages_per_language + n_messenger + n_extra
    )
    n_bad = round(params.bad_fraction * total)
    budget = dict.fromkeys((*BAD_ONE_OFF, *BAD_WEIGHTS), 0)
    for kind in BAD_ONE_OFF:
        if n_bad > 0:
            budget[kind] = 1
            n_bad -= 1
    budget.update(allocate(n_bad, BAD_WEIGHTS))
    return budget


def _write_nightshade(world: World, w: Writer, n: int, budget: dict[str, int]) -> None:
    rng = world.rng
    listings = world.market_listings("ns", n, {"ns_no_text": budget["ns_no_text"]})
    num = 100
    for lst in listings:
        num += rng.randint(1, 7)
        lst.native = f"NS-{num:05d}"
    good = [x for x in listings if not x.bad]
    for i, lst in enumerate(listings):
        rel = f"html/nightshade/{lst.native}.html"
        item_id = stable_id("sample_nightshade", lst.native)
        if lst.bad:
            w.write(rel, nightshade_empty(rng, lst.native, i))
            detail = "removed listing: empty title and description" if i % 2 == 0 else "captcha page, no text"
            w.add_bad(
                item_id if i % 2 == 0 else None, "sample_nightshade", rel, "page", "ingest", "no_text", detail
            )
            continue
        _maybe_mojibake(rng, lst)
        w.write(rel, nightshade_page(rng, lst, rng.sample([g for g in good if g is not lst], 3)))
        w.add_truth(
            item_id,
            "sample_nightshade",
            "listing",
            "Nightshade",
            lst.vendor,
            lst.lang,
            lst.labels,
            _messy(lst),
        )
    w.counts["nightshade_pages"] = len(listings)


def _write_velvet(world: World, w: Writer, n: int, budget: dict[str, int]) -> None:
    rng = world.rng
    listings = world.market_listings("vb", n, {"vb_no_text": budget["vb_no_text"]})
    numbers = rng.sample(range(1000, 1000 + max(9000, 3 * n)), n)
    for lst, number in zip(listings, numbers, strict=True):
        lst.native = f"VB-{number}"
    for i, lst in enumerate(listings):
        rel = f"html/velvet/{lst.native}.html"
        item_id = stable_id("sample_velvet", lst.native)
        if lst.bad:
            w.write(rel, velvet_empty(lst.native, i))
            zero = i % 3 == 2
            detail = "zero-byte file" if zero else "product page without text"
            w.add_bad(None if zero else item_id, "sample_velvet", rel, "page", "ingest", "no_text", detail)
            continue
        _maybe_mojibake(rng, lst)
        w.write(rel, velvet_page(rng, lst))
        w.add_truth(
            item_id,
            "sample_velvet",
            "listing",
            "Velvet Bazaar",
            lst.vendor,
            lst.lang,
            lst.labels,
            _messy(lst),
        )
    w.counts["velvet_pages"] = len(listings)


def _write_agora(world: World, w: Writer, n: int, budget: dict[str, int]) -> None:
    rng = world.rng
    marks = {
        "ag_wrong_fields": budget["ag_wrong_fields"],
        "negative_price_text_messy": n // MESSY_PER_MARKET + 1,
    }
    listings = world.market_listings("ag", n, marks)
    rel = "agora_export.csv"
    lines = ["Vendor,Category,Item,Item Description,Price,Origin,Destination,Rating,Remarks\n"]
    for row_no, lst in enumerate(listings, start=1):
        item_id = stable_id("sample_agora_csv", f"agora_export.csv:{row_no}")
        _maybe_mojibake(rng, lst)
        desc = " ".join(p.replace("\n", " ") for p in lst.paragraphs)
        btc = lst.price_usd / 62000.0
        rating = rng.choice(
            [f"{rng.uniform(4.3, 5.0):.2f}/5", "~5/5", "[0 deals]", f"{rng.uniform(4.6, 5):.1f}/5"]
        )
        remarks = rng.choice(["", "", "", "", "price possibly inflated", "few ratings"])
        price = f"{btc:.8f}".rstrip("0").rstrip(".") + " BTC"
        if lst.mark == "negative_price_text_messy":  # not a price a parser accepts: read as no price
            price = "-" + price
        fields = [
            lst.vendor,
            lst.category,
            lst.title,
            desc,
            price,
            lst.ships_from_field,
            lst.ships_to_field,
            rating,
            remarks,
        ]
        if lst.mark == "ag_wrong_fields":
            fields[3] = desc + ", cheap, fast, discreet"
            lines.append(",".join(str(f).replace('"', "") for f in fields) + "\n")
            w.add_bad(
                item_id,
                "sample_agora_csv",
                rel,
                f"row {row_no}",
                "ingest",
                "malformed_row",
                "unquoted commas in Item Description: more cells than columns",
            )
            continue
        lines.append(_csv_line(fields))
        w.add_truth(
            item_id, "sample_agora_csv", "listing", "Juniper", lst.vendor, lst.lang, lst.labels, _messy(lst)
        )
    w.write(rel, "".join(lines))
    w.counts["agora_rows"] = len(listings)


def _write_obsidian(world: World, w: Writer, n: int, budget: dict[str, int]) -> None:
    rng = world.rng
    marks = {k: budget[k] for k in ("ob_empty_text", "ob_truncated", "ob_negative_price", "ob_huge_text")}
    marks["text_price_messy"] = n // MESSY_PER_MARKET + 1
    listings = world.market_listings("ob", n, marks)
    rel = "listings.jsonl"
    lines: list[str] = []
    num = 0
    for line_no, lst in enumerate(listings, start=1):
        num += rng.randint(1, 4)
        _maybe_mojibake(rng, lst)
        row = generic_row(rng, lst, f"ob-{num:06d}", "Obsidian")
        loc = f"line {line_no}"
        if lst.mark == "ob_empty_text":
            for key in ("title", "description", "text"):
                row.pop(key, None)
            if rng.random() < 0.5:
                row["title"] = ""
                row["description"] = rng.choice(["", "   ", "\n"])
            w.add_bad(
                row["id"], "sample_listings", rel, loc, "ingest", "no_text", "no title, description or text"
            )
        elif lst.mark == "ob_truncated":
            full = json.dumps(row, ensure_ascii=False)
            lines.append(full[: rng.randint(20, max(21, len(full) // 2))] + "\n")
            w.add_bad(
                row["id"], "sample_listings", rel, loc, "ingest", "invalid_json", "line cut off mid-record"
            )
            continue
        elif lst.mark == "ob_negative_price":
            row["price"] = -abs(row["price"]) or -1.0
            w.add_bad(row["id"], "sample_listings", rel, loc, "clean", "invalid_price", "negative price")
        elif lst.mark == "ob_huge_text":
            filler = "Bulk prices on request, message me for a quote. "
            row.pop("text", None)
            row["title"] = "Cheap bulk – read the whole description"
            row["description"] = (filler * (HUGE_TEXT_CHARS // len(filler) + 1))[:HUGE_TEXT_CHARS]
            w.add_bad(row["id"], "sample_listings", rel, loc, "clean", "text_too_long", "10 MB description")
        else:
            if lst.mark == "text_price_messy":  # a price nobody can parse: read as no price
                row["price"] = rng.choice(["ask", "twenty", "12,5O", "DM for price"])
            w.add_truth(
                row["id"],
                "sample_listings",
                "listing",
                "Obsidian",
                lst.vendor,
                lst.lang,
                lst.labels,
                _messy(lst),
            )
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    w.write(rel, "".join(lines))
    w.counts["listings_jsonl_lines"] = len(listings)


def _service_message(rng: random.Random, msg_id: int, date: datetime, channel: dict[str, Any]) -> dict:
    msg: dict[str, Any] = {
        "id": msg_id,
        "type": "service",
        "date": date.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_unixtime": _unix(date),
        "actor": channel["name"],
        "actor_id": f"channel{channel['id']}",
    }
    action = rng.choice(
        ["pin_message", "pin_message", "join_group_by_link", "edit_group_title", "edit_group_photo"]
    )
    if action == "join_group_by_link":  # a member joined via the invite link
        member = rng.choice(load_templates()["members"][channel["profile"]["lang"]])
        msg.update(
            {
                "actor": member,
                "actor_id": f"user{rng.randint(10**8, 10**10)}",
                "action": action,
                "inviter": "Group",
            }
        )
    elif action == "pin_message":
        msg.update({"action": action, "message_id": max(1, msg_id - rng.randint(1, 5))})
    elif action == "edit_group_title":
        msg.update({"action": action, "title": channel["name"]})
    else:
        msg.update(
            {
                "action": action,
                "photo": f"photos/photo_{msg_id}@{date:%d-%m-%Y_%H-%M-%S}.jpg",
                "width": 640,
                "height": 640,
            }
        )
    msg.update({"text": "", "text_entities": []})
    return msg


def _telegram_message(world: World, w: Writer, ch: dict[str, Any], msg_id: int, date: datetime) -> dict:
    """One content message of a channel (an offer or not), its truth line written."""
    rng = world.rng
    prof = ch["profile"]
    msg: dict[str, Any] = {
        "id": msg_id,
        "type": "message",
        "date": date.strftime("%Y-%m-%dT%H:%M:%S"),
        "date_unixtime": _unix(date),
        "from": ch["name"],
        "from_id": f"channel{ch['id']}",
    }
    offer = rng.random() >= 0.35
    ad = build_ad(world, prof, ch["ident"], offer)
    if rng.random() < 0.1:
        edited = date + timedelta(minutes=rng.randint(1, 90))
        msg.update({"edited": edited.strftime("%Y-%m-%dT%H:%M:%S"), "edited_unixtime": _unix(edited)})
    if ad.category in ("news", "scam") and rng.random() < 0.5:
        msg["forwarded_from"] = rng.choice(["Crypto Signals VIP", "Darknet News", "Street Watch", None])
    media = rng.random()
    if offer and media < 0.3:
        msg.update(
            {"photo": f"photos/photo_{msg_id}@{date:%d-%m-%Y_%H-%M-%S}.jpg", "width": 1280, "height": 960}
        )
    elif offer and media < 0.38:
        msg.update(
            {
                "file": f"video_files/menu_{msg_id}.mp4",
                "thumbnail": f"video_files/menu_{msg_id}.mp4_thumb.jpg",
                "media_type": "video_file",
                "mime_type": "video/mp4",
                "duration_seconds": rng.randint(5, 40),
                "width": 720,
                "height": 1280,
            }
        )
    msg["text"], msg["text_entities"] = telegram_text(rng, ad, entities=rng.random() < 0.6)
    w.add_truth(
        f"tg:{ch['id']}:{msg_id}", "sample_telegram", "ad", ch["name"], ch["name"], prof["lang"], ad.labels
    )
    return msg


def _write_telegram(world: World, w: Writer, params: SampleParams, budget: dict[str, int]) -> None:
    rng = world.rng
    profiles = world.tpl["channels"]
    ids = rng.sample(range(1_100_000_000, 2_100_000_000), len(profiles))
    channels = [
        {
            "profile": p,
            "id": cid,
            "name": p["name"],
            "slug": p["slug"],
            "ident": make_identity(rng, p["slug"], p["country"]),
        }
        for p, cid in zip(profiles, ids, strict=True)
    ]
    sizes = []
    for ch in channels:  # the language's messages split over its channels
        same = [c for c in channels if c["profile"]["lang"] == ch["profile"]["lang"]]
        share, rest = divmod(params.messages_per_language, len(same))
        sizes.append(share + (1 if same.index(ch) < rest else 0))
    no_caption = [0] * len(channels)
    for i in range(budget["tg_no_caption"]):
        no_caption[(i * 5) % len(channels)] += 1
    total = services = 0
    for ch, n, n_photo in zip(channels, sizes, no_caption, strict=True):
        rel = f"telegram/{ch['slug']}/result.json"
        photo_slots = set(rng.sample(range(1, n), min(n_photo, n - 1)))
        service_slots = set(rng.sample(range(n), rng.randint(1, 3)))  # not items: the adapter skips them
        msg_id = rng.randint(2, 40)
        date = START + timedelta(days=rng.randint(60, 200), hours=rng.randint(0, 12))
        messages: list[dict[str, Any]] = []
        for i in range(n):
            msg_id += rng.choice([1, 1, 1, 2, 3])  # gaps: deleted messages
            date += timedelta(minutes=rng.randint(15, 1800))
            if i in service_slots:
                messages.append(_service_message(rng, msg_id, date, ch))
                w.skipped.append(
                    {
                        "id": f"tg:{ch['id']}:{msg_id}",
                        "source": "sample_telegram",
                        "file": f"{SAMPLE_DIR}/{rel}",
                        "locator": f"message {msg_id}",
                        "reason": "service_message",
                    }
                )
                services += 1
                msg_id += 1
                date += timedelta(minutes=rng.randint(1, 60))
            if i in photo_slots:
                messages.append(
                    {
                        "id": msg_id,
                        "type": "message",
                        "date": date.strftime("%Y-%m-%dT%H:%M:%S"),
                        "date_unixtime": _unix(date),
                        "from": ch["name"],
                        "from_id": f"channel{ch['id']}",
                        "photo": f"photos/photo_{msg_id}@{date:%d-%m-%Y_%H-%M-%S}.jpg",
                        "width": 1280,
                        "height": 960,
                        "text": "",
                        "text_entities": [],
                    }
                )
                w.add_bad(
                    f"tg:{ch['id']}:{msg_id}",
                    "sample_telegram",
                    rel,
                    f"message {msg_id}",
                    "ingest",
                    "no_text",
                    "photo without caption",
                )
                continue
            messages.append(_telegram_message(world, w, ch, msg_id, date))
        total += len(messages)
        export = {"name": ch["name"], "type": "public_channel", "id": ch["id"], "messages": messages}
        w.write(rel, json.dumps(export, ensure_ascii=False, indent=1) + "\n")
    n_channels = len(channels)
    if budget["tg_broken_file"]:  # an export cut off mid-file: the whole file is unreadable
        prof = profiles[0]
        ident = make_identity(rng, "oldbackup", prof["country"])
        date = START + timedelta(days=30)
        messages = []
        for msg_id in range(1, 16):
            date += timedelta(hours=rng.randint(1, 30))
            ad = build_ad(world, prof, ident, rng.random() < 0.7)
            messages.append(
                {
                    "id": msg_id,
                    "type": "message",
                    "date": date.strftime("%Y-%m-%dT%H:%M:%S"),
                    "date_unixtime": _unix(date),
                    "from": "Old Backup Channel",
                    "from_id": "channel1000000001",
                    "text": ad.text,
                    "text_entities": [{"type": "plain", "text": ad.text}],
                }
            )
        export = {
            "name": "Old Backup Channel",
            "type": "public_channel",
            "id": 1000000001,
            "messages": messages,
        }
        full = json.dumps(export, ensure_ascii=False, indent=1)
        rel = "telegram/broken_channel/result.json"
        w.write(rel, full[: int(len(full) * 0.6)])
        w.add_bad(
            None, "sample_telegram", rel, "file", "ingest", "unreadable_file", "export cut off mid-file"
        )
        n_channels += 1
    w.counts["telegram_channels"] = n_channels
    w.counts["telegram_messages"] = total
    w.counts["telegram_service_messages"] = services


def _write_messenger(world: World, w: Writer, n_rows: int, n_bad: int) -> None:
    rng = world.rng
    profiles = {p["slug"]: p for p in world.tpl["channels"]}
    chans = world.tpl["messenger_channels"]
    idents = {
        c["name"]: make_identity(rng, c["name"] + "m", profiles[c["profile"]]["country"]) for c in chans
    }
    rel = "messenger.csv"
    lines = [_csv_line(["channel", "date", "sender", "text"])]
    bad_rows = set(rng.sample(range(2, n_rows + 1), min(n_bad, n_rows - 1)))
    date = START + timedelta(days=150)
    for row_no in range(1, n_rows + 1):
        chan = chans[row_no - 1] if row_no <= len(chans) else rng.choice(chans)
        prof = profiles[chan["profile"]]
        date += timedelta(minutes=rng.randint(5, 900))
        offer = rng.random() >= 0.4
        ad = build_ad(world, prof, idents[chan["name"]], offer)
        sender = (
            idents[chan["name"]].handles["tg"] if offer else rng.choice(world.tpl["members"][prof["lang"]])
        )
        stamp = date.strftime("%Y-%m-%d %H:%M")
        item_id = stable_id("sample_messenger", f"messenger.csv:{row_no}")
        if row_no in bad_rows:
            if rng.random() < 0.5:  # the text column is missing
                lines.append(f"{chan['name']},{stamp},{sender}\n")
                reason, detail = "no_text", "row with 3 of 4 cells: no text"
            else:
                flat = ad.text.replace("\n", " ").replace('"', "").replace(",", " ")
                lines.append(f"{chan['name']},{stamp},{sender},{flat},extra,fields\n")
                reason, detail = "malformed_row", "row with 6 cells for 4 columns"
            w.add_bad(item_id, "sample_messenger", rel, f"row {row_no}", "ingest", reason, detail)
            continue
        broken = mojibake(ad.text) if rng.random() < 0.05 else None
        lines.append(_csv_line([chan["name"], stamp, sender, broken or ad.text]))
        w.add_truth(
            item_id,
            "sample_messenger",
            "ad",
            chan["name"],
            sender,
            prof["lang"],
            ad.labels,
            "mojibake" if broken else None,
        )
    w.write(rel, "".join(lines))
    w.counts["messenger_rows"] = n_rows


def _write_extra(world: World, w: Writer, n: int, budget: dict[str, int]) -> None:
    rng = world.rng
    listings = world.market_listings("ks", max(n, 20), {})[:n]
    rows = []
    for i, lst in enumerate(listings, start=1):
        row = generic_row(rng, lst, f"ks-{i:06d}", "Kestrel")
        rows.append(json.dumps(row, ensure_ascii=False) + "\n")
        w.add_truth(row["id"], "sample_extra", "listing", "Kestrel", lst.vendor, lst.lang, lst.labels)
    w.write("extra/more_listings.jsonl", "".join(rows))
    w.counts["extra_rows"] = len(listings)
    if budget["extra_junk_file"]:
        w.write("extra/junk.jsonl", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + rng.randbytes(4096))
        w.add_bad(
            None,
            "sample_extra",
            "extra/junk.jsonl",
            "file",
            "ingest",
            "unreadable_file",
            "binary data in a .jsonl file",
        )


def _metrics(w: Writer) -> dict[str, int | float]:
    good, bad = len(w.truth), len(w.bad)
    metrics: dict[str, int | float] = dict(w.counts)
    metrics.update(
        good_items=good,
        bad_items=bad,
        bad_fraction=round(bad / (good + bad), 4) if good + bad else 0.0,
        messy_items=len(w.messy),
        skipped_items=len(w.skipped),
        listings=sum(t["kind"] == "listing" for t in w.truth),
        ads=sum(t["kind"] == "ad" for t in w.truth),
        offers=sum(bool(t["is_offer"]) for t in w.truth),
        non_offers=sum(not t["is_offer"] for t in w.truth),
    )
    for source in SOURCES:
        metrics[f"good_{source['name']}"] = sum(t["source"] == source["name"] for t in w.truth)
    for lang in AD_LANGS:
        metrics[f"lang_{lang}"] = sum(t["lang"] == lang for t in w.truth)
    return metrics


NOTES = {
    "truth": "one line per readable item (messy_items included); bad_items are the others, each with the "
    "stage (ingest|clean) that should drop it and its reason; skipped_items are not items at all",
    "ids": "html: stable_id(source, listing id); csv: stable_id(source, '<file name>:<data row, 1-based>'); "
    "jsonl: its id; telegram: tg:<channel id>:<message id>",
    "quantity": "primary offer = the amount in the title, else the smallest tier in the text; ad menus are "
    "written smallest first; bundles: the first-named component; non-drug items: all null",
    "laundering_hints": "read from title and text only (a price in BTC sets nothing)",
    "messy_items": "mojibake: UTF-8 stored as cp1252 (labels are those of the repaired text); "
    "negative_price_text / text_price: a price no parser accepts, expect price null",
}


def run(params: SampleParams, paths: Paths) -> dict[str, int | float]:
    """Write the sample scrapes, ``truth.jsonl`` and ``manifest.json`` to ``paths.sample``; return counts."""
    if not 0 <= params.bad_fraction < 0.5:
        raise ValueError("sample.bad_fraction must be in [0, 0.5)")
    if params.listings_per_market < 20 or params.messages_per_language < 10:
        raise ValueError("sample.listings_per_market must be >= 20 and sample.messages_per_language >= 10")
    if paths.sample.exists():
        shutil.rmtree(paths.sample)  # the folder holds this generator's output only
    paths.sample.mkdir(parents=True)
    world = World(params.seed)
    w = Writer(paths.sample)
    n_messenger = max(20, round(params.messages_per_language * len(AD_LANGS) / 4))
    n_extra = max(5, params.listings_per_market // 20)
    budget = bad_budget(params, n_messenger, n_extra)
    _write_nightshade(world, w, params.listings_per_market, budget)
    _write_velvet(world, w, params.listings_per_market, budget)
    _write_agora(world, w, params.listings_per_market, budget)
    _write_obsidian(world, w, params.listings_per_market, budget)
    _write_telegram(world, w, params, budget)
    _write_messenger(world, w, n_messenger, budget["msg_wrong_fields"])
    _write_extra(world, w, n_extra, budget)
    w.write("truth.jsonl", "".join(json.dumps(t, ensure_ascii=False) + "\n" for t in w.truth))
    metrics = _metrics(w)
    manifest = {
        "generator": "pipeline.sample",
        "params": {
            "seed": params.seed,
            "listings_per_market": params.listings_per_market,
            "messages_per_language": params.messages_per_language,
            "bad_fraction": params.bad_fraction,
        },
        "sources": [dict(s) for s in SOURCES],
        "counts": metrics,
        "bad_items": w.bad,
        "messy_items": w.messy,
        "skipped_items": w.skipped,
        "notes": NOTES,
    }
    w.write("manifest.json", json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
    return metrics


# ============================================================================================ command

app = typer.Typer(add_completion=False, help="Write the built-in sample data to data/raw/sample/.")


@app.command()
def main(params_file: Path = Path("params.yaml"), out: Path | None = None) -> None:
    """Read the ``sample:`` section of params.yaml (missing -> defaults) and write the sample data."""
    data = read_yaml(params_file) if params_file.exists() else {}
    params = from_dict(SampleParams, data.get("sample") or {}, "sample")
    metrics = run(params, Paths(root=out) if out is not None else Paths())
    typer.echo(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    app()
