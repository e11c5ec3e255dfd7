"""Text normalisation, obfuscation folding and language identification."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.text import clean_text, compose_text, detect_language, detect_languages, fold_obfuscation


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CafÃ© con leche", "Café con leche"),  # UTF-8 read as cp1252: ftfy repairs it
        ("donâ€™t miss", "don’t miss"),
        ("Weed &amp; hash", "Weed & hash"),
        ("<p>First</p><p>Second</p>", "First\nSecond"),
        ("<script>alert(1)</script><b>Bold</b> text", "Bold text"),
        ("Write &lt;b&gt; literally", "Write <b> literally"),
        ("  many   spaces\t\tand\u00a0nbsp  ", "many spaces and nbsp"),
        ("Ships from 🇳🇱 NL 🍁", "Ships from 🇳🇱 NL 🍁"),  # flags and emoji survive
        ("ｆｕｌｌｗｉｄｔｈ ５ｇ", "fullwidth 5g"),  # NFKC
        ("line1\r\nline2\n\n\n\nline3", "line1\nline2\n\nline3"),
        (None, ""),
        ("ctrl\x00chars\x07", "ctrl chars"),
    ],
)
def test_clean_text(raw: str | None, expected: str) -> None:
    assert clean_text(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("c0ke 1g", "coke 1g"),
        ("x4nax bars", "xanax bars"),
        ("M D M A crystal", "MDMA crystal"),
        ("k.e.t 5g", "ket 5g"),
        ("xxxanax 2mg", "xanax 2mg"),
        ("weeeeed", "weed"),
        ("100mg 4-MMC x100", "100mg 4-MMC x100"),  # quantities and drug codes are not leetspeak
        ("2C-B 20mg", "2C-B 20mg"),
        ("m3th sh4rds", "meth shards"),
    ],
)
def test_fold_obfuscation(raw: str, expected: str) -> None:
    assert fold_obfuscation(raw) == expected


def test_folding_leaves_original_untouched() -> None:
    original = "c0ke 1g"
    fold_obfuscation(original)
    assert original == "c0ke 1g"


def test_compose_text_avoids_repeating_title() -> None:
    assert compose_text("Title", "Body") == "Title\nBody"
    assert compose_text("Title", "Title and more") == "Title and more"
    assert compose_text("", "Body") == "Body"


# Project-written sentences in the style of messenger ads and vendor pages, 4 per language.
LANG_CASES = {
    "en": [
        "We ship every day from the UK, tracked and discreet, order before noon",
        "Best quality weed in town, message us for the menu and prices",
        "Please read the rules of this channel before you order anything",
        "Police seized a large shipment at the port yesterday, stay safe",
    ],
    "de": [
        "Versand aus Deutschland, beste Qualität und schnelle Lieferung",
        "Wir liefern in ganz Berlin, Abholung ist leider nicht möglich",
        "Bitte lest die Regeln des Kanals bevor ihr bestellt",
        "Die Polizei hat gestern eine große Lieferung beschlagnahmt",
    ],
    "nl": [
        "Snelle levering in heel Nederland, betalen met bitcoin of contant",
        "Wij hebben weer nieuwe voorraad, bestellen kan via de bot",
        "Lees eerst de regels van het kanaal voordat je iets vraagt",
        "Onze bezorging is vandaag helaas wat later dan normaal",
    ],
    "fr": [
        "Livraison rapide partout en France, paiement en crypto seulement",
        "Nous avons de nouveaux produits cette semaine, contactez nous",
        "Merci de lire les règles du canal avant de commander",
        "La police a saisi une grosse livraison au port hier soir",
    ],
    "es": [
        "Envío desde España en 24 horas, pago con bitcoin o efectivo",
        "Tenemos nueva mercancía de muy buena calidad esta semana",
        "Por favor lee las reglas del canal antes de hacer un pedido",
        "La policía incautó un gran cargamento en el puerto ayer",
    ],
    "pl": [
        "Wysyłka z Polski, płatność BLIK albo krypto, paczkomat w 24h",
        "Mamy nowy towar bardzo dobrej jakości, pisz na priv",
        "Przeczytaj zasady kanału zanim złożysz zamówienie",
        "Policja przejęła wczoraj duży transport w porcie",
    ],
    "ru": [
        "Закладки по всему городу, оплата биткоином, работаем круглосуточно",
        "Новое поступление, качество отличное, пишите оператору",
        "Прочитайте правила канала перед тем как делать заказ",
        "Вчера полиция изъяла крупную партию в порту",
    ],
}


@pytest.mark.parametrize(("lang", "text"), [(lang, t) for lang, texts in LANG_CASES.items() for t in texts])
def test_detect_language_seven_languages(lang: str, text: str) -> None:
    assert detect_language(text) == lang


def test_detect_languages_batch_matches_single_and_accuracy() -> None:
    texts = [t for texts in LANG_CASES.values() for t in texts]
    gold = [lang for lang, texts in LANG_CASES.items() for _ in texts]
    predicted = detect_languages(texts)
    assert predicted == [detect_language(t) for t in texts]
    accuracy = sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)
    assert accuracy == 1.0


@pytest.mark.parametrize("text", ["Kush 5g top", "100x 2mg", "🍁🍁🍁", "", "MDMA 84%"])
def test_jargon_without_language_signal_is_undetermined(text: str) -> None:
    assert detect_language(text) == "und"


_FORKED_DETECTION = """
import json, multiprocessing, sys
from pipeline.text import detect_languages, share_language_models

def private_mib():
    with open("/proc/self/smaps_rollup") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return sum(int(fields[k].split()[0]) for k in ("Private_Clean", "Private_Dirty")) / 1024

def child(texts, queue):
    before = private_mib()
    languages = detect_languages(texts)
    queue.put((languages, private_mib() - before))

texts = json.loads(sys.argv[1])
share_language_models()
context = multiprocessing.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(texts, queue))
process.start()
languages, grown = queue.get(timeout=120)
process.join(30)
print(json.dumps({"child": languages, "parent": detect_languages(texts), "child_private_growth_mib": grown}))
"""


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="needs Linux /proc")
def test_language_models_shared_with_forked_workers(tmp_path: Path) -> None:
    """``narcotag score`` loads lingua's models before it forks its workers: a forked worker detects
    languages (one text at a time: no deadlock on the parent's thread pool) with the same results, and
    without loading its own copy of the models (~280 MiB)."""
    texts = [t for texts in LANG_CASES.values() for t in texts]
    done = subprocess.run(
        [sys.executable, "-c", _FORKED_DETECTION, json.dumps(texts)],
        capture_output=True, text=True, timeout=300, cwd=Path(__file__).resolve().parents[1],
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    gold = [lang for lang, texts in LANG_CASES.items() for _ in texts]
    assert result["child"] == result["parent"] == gold
    assert result["child_private_growth_mib"] < 100  # a worker loading its own models grows ~280 MiB
