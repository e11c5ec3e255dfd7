"""The spaCy model family: the drug_type head, the hints and span models and the train_spacy stage overfit
tiny data, save, and reload with equal predictions (tiny step budgets: the file runs in well under a
minute on two cores)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import families
from pipeline.config import Paths
from pipeline.heads.drug_type import DrugTypeHead, DrugTypeParams, binarize
from pipeline.heads.drug_type_spacy import SpacyDrugTypeHead, SpacyParams
from pipeline.spans_spacy import (
    ORIGIN,
    QUANTITY,
    SpacyHintsModel,
    SpacySpanModel,
    SpansParams,
    gold_half,
    load_gold,
)
from pipeline.taxonomy import DRUG_TYPES
from pipeline.text import fold_obfuscation
from pipeline.train_spacy import TrainSpacyParams, run

# Project-written examples in the style of market titles; none is copied from any corpus.
TRAIN = [
    ("Amnesia Haze buds 10g top shelf", ["cannabis"]),
    ("Moroccan hash 25g premium resin", ["cannabis"]),
    ("OG Kush 28g indoor flowers", ["cannabis"]),
    ("Colombian cocaine 1g 90% pure", ["cocaine"]),
    ("Fishscale coke 3.5g uncut", ["cocaine"]),
    ("Peruvian flake cocaine 5g", ["cocaine"]),
    ("Speed paste 100g amphetamine", ["amphetamine"]),
    ("Amphetamine sulphate 50g dutch", ["amphetamine"]),
    ("Crystal meth shards 7g", ["methamphetamine"]),
    ("MDMA crystal 84% champagne 5g", ["mdma"]),
    ("Tesla ecstasy pills 250mg x50", ["mdma"]),
    ("Afghan heroin no.4 5g", ["heroin"]),
    ("Replica sneakers size 42", ["non_drug"]),
    ("Netflix premium account 1 year", ["non_drug"]),
    ("Hash and weed combo 10g each", ["cannabis"]),
    ("Cocaine and MDMA party pack", ["cocaine", "mdma"]),
]

FAST = SpacyParams(max_steps=200, patience=200, eval_frequency=50, dropout=0.0, batch_words=500)
FAST_SPANS = SpansParams(
    hints_max_steps=200,
    ner_max_steps=250,
    patience=250,
    eval_frequency=50,
    dropout=0.0,
    batch_words=500,
    dev_fraction=0.2,
    corpus_records=40,
    gold_repeat=1,
)


def _frame(rows: list[tuple[str, list[str]]]) -> pd.DataFrame:
    texts = [t for t, _ in rows]
    return pd.DataFrame(
        {"text": texts, "text_folded": [fold_obfuscation(t) for t in texts], "labels": [c for _, c in rows]}
    )


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> tuple[SpacyDrugTypeHead, pd.DataFrame, Path]:
    records = _frame(TRAIN)
    head = SpacyDrugTypeHead(FAST).fit(records, val_records=records)
    directory = tmp_path_factory.mktemp("spacy_head") / "drug_type_spacy"
    head.save(directory)
    return head, records, directory


def test_head_overfits_tiny_training_set(fitted: tuple[SpacyDrugTypeHead, pd.DataFrame, Path]) -> None:
    head, records, _ = fitted
    predicted = head.predict(records)["drug_types"]
    assert [sorted(p) for p in predicted] == [sorted(c) for c in records["labels"]]


def test_head_save_load_equal(fitted: tuple[SpacyDrugTypeHead, pd.DataFrame, Path]) -> None:
    head, records, directory = fitted
    for loaded in (SpacyDrugTypeHead.load(directory), families.load_drug_type_head(directory)):
        assert isinstance(loaded, SpacyDrugTypeHead)
        assert np.allclose(loaded.predict_scores(records), head.predict_scores(records))
        assert loaded.predict(records) == head.predict(records)
        assert np.allclose(loaded.thresholds_, head.thresholds_)
    marker = json.loads((directory / families.HEAD_MARKER).read_text())
    assert marker["family"] == "spacy" and families.head_family(directory) == "spacy"


@pytest.mark.filterwarnings("ignore:Label not .* is present in all training examples")
def test_head_output_matches_sklearn_head(fitted: tuple[SpacyDrugTypeHead, pd.DataFrame, Path]) -> None:
    head, records, _ = fitted
    sklearn = DrugTypeHead(DrugTypeParams(min_df=1)).fit(records)
    ours, theirs = head.predict(records), sklearn.predict(records)
    assert set(ours) == set(theirs)
    assert all(len(v) == len(records) for v in ours.values())
    assert head.predict_scores(records).shape == (len(records), len(DRUG_TYPES))
    assert set(ours["drug_type_scores"][0]) == set(DRUG_TYPES)
    assert ours["drug_type_evidence"] == theirs["drug_type_evidence"]


# --- hints and spans -------------------------------------------------------------------------------------

HINTS = [
    ("Payment in BTC only", ["bitcoin"]),
    ("We take Monero and bitcoin", ["bitcoin", "privacy_coin"]),
    ("Cash in the mail accepted", ["cash_by_mail"]),
    ("Amazon gift cards welcome", ["gift_card"]),
    ("Western Union transfer possible", ["money_transfer"]),
    ("Top quality weed, fast shipping", []),
    ("Stealth vacuum sealed packaging", []),
    ("XMR preferred for all orders", ["privacy_coin"]),
]

PLACES = ["Germany", "Spain", "Netherlands", "France"]
CODES = {"germany": "DE", "spain": "ES", "netherlands": "NL", "france": "FR"}
AMOUNTS = ["10g", "5 grams", "100 pills", "3.5g"]


def _span_examples() -> list[tuple[str, list[tuple[int, int, str]]]]:
    examples = []
    for i, (amount, place) in enumerate((a, p) for a in AMOUNTS for p in PLACES):
        product = ["MDMA", "speed", "hash", "coke"][i % 4]
        text = f"{amount} {product} ships from {place}"
        start = text.index(place)
        examples.append((text, [(0, len(amount), QUANTITY), (start, start + len(place), ORIGIN)]))
    return examples


def _aligned(model: SpacySpanModel, examples: list[tuple[str, list[tuple[int, int, str]]]]) -> list[set]:
    import spacy

    docs = model._docs(spacy.blank("en"), examples)
    return [{(e.start_char, e.end_char, e.label_) for e in doc.ents} for doc in docs]


def test_hints_model_overfits_and_reloads(tmp_path: Path) -> None:
    texts = [t for t, _ in HINTS] * 3
    hints = [h for _, h in HINTS] * 3
    model = SpacyHintsModel(FAST_SPANS).fit(texts, hints)
    assert model.predict([t for t, _ in HINTS]) == [h for _, h in HINTS]
    model.save(tmp_path / "hints_spacy")
    loaded = SpacyHintsModel.load(tmp_path / "hints_spacy")
    assert np.allclose(loaded.predict_scores(texts), model.predict_scores(texts))
    assert loaded.predict(texts) == model.predict(texts)


def test_span_model_overfits_and_reloads(tmp_path: Path) -> None:
    examples = _span_examples()
    model = SpacySpanModel(FAST_SPANS).fit(examples * 2, CODES)
    texts = [t for t, _ in examples]
    predicted = [{(s["start"], s["end"], s["label"]) for s in spans} for spans in model.predict(texts)]
    assert predicted == _aligned(model, examples)
    spans = model.predict(["10g hash ships from Spain"])[0]
    assert model.origin_codes(spans) == {"ES"}
    assert model.quantity(spans)["total_grams"] == 10
    model.save(tmp_path / "spans_spacy")
    loaded = SpacySpanModel.load(tmp_path / "spans_spacy")
    assert loaded.predict(texts) == model.predict(texts)
    assert loaded.codes_ == model.codes_


def test_gold_halves_are_stable_and_disjoint(tmp_path: Path) -> None:
    assert gold_half("q001") == gold_half("q001")
    halves = {gold_half(f"item-{i}") for i in range(50)}
    assert halves == {"dev", "test"}
    (tmp_path / "laundering.jsonl").write_text(
        "\n".join(
            json.dumps({"id": f"l{i}", "text": "BTC", "laundering_hints": ["bitcoin"]}) for i in range(20)
        )
    )
    gold = load_gold(tmp_path)
    dev_ids = {i["id"] for i in gold["laundering"]["dev"]}
    test_ids = {i["id"] for i in gold["laundering"]["test"]}
    assert not dev_ids & test_ids and len(dev_ids | test_ids) == 20
    assert gold["quantity"] == {"dev": [], "test": []}


# --- the stage -------------------------------------------------------------------------------------------


def _write_prepared(root: Path) -> None:
    rows = []
    for market in ("m1", "m2"):
        for k, (text, codes) in enumerate(TRAIN):
            for split in ("train", "val", "test"):
                if split != "train" and k % 2:
                    continue
                rows.append(
                    {
                        "id": f"{market}-{split}-{k}",
                        "market_key": market,
                        "split": split,
                        "text": f"{text} ships from Germany, BTC only",
                        "title": text,
                        "lang": "en",
                        "ships_from_raw": None,
                        "ships_to_raw": None,
                        "labels": codes,
                    }
                )
    frame = pd.DataFrame(rows)
    frame["text_folded"] = [fold_obfuscation(t) for t in frame["text"]]
    processed = Paths(root=root).processed
    processed.mkdir(parents=True)
    frame.to_parquet(processed / "drug_type.parquet", index=False)
    (processed / "prepare_report.json").write_text(json.dumps({"lomo_markets": ["m1", "m2"]}))
    gold = Paths(root=root).gold
    gold.mkdir(parents=True)
    quantity = [{"id": f"q{i}", "text": f"{i + 1}g hash", "lang": "en"} for i in range(8)]
    for item in quantity:
        item["quantity"] = {"total_grams": int(item["text"].split("g")[0]), "units": None}
    laundering = [{"id": f"l{i}", "text": t, "laundering_hints": h} for i, (t, h) in enumerate(HINTS)]
    origin = [
        {"id": f"o{i}", "text": f"5g speed ships from {p}", "ships_from_raw": None, "ships_to_raw": None}
        for i, p in enumerate(PLACES)
    ]
    for item, code in zip(origin, ["DE", "ES", "NL", "FR"], strict=True):
        item["ships_from"] = [code]
    for name, items in (("quantity", quantity), ("laundering", laundering), ("origin", origin)):
        (gold / f"{name}.jsonl").write_text("\n".join(json.dumps(i) for i in items) + "\n")


def test_train_spacy_stage_writes_models_scores_and_facts(tmp_path: Path, mlflow_uri: str) -> None:
    _write_prepared(tmp_path)
    paths = Paths(root=tmp_path)
    info = run(TrainSpacyParams(drug_type=FAST, spans=FAST_SPANS), paths, "tiny")
    assert (paths.models / "drug_type_spacy" / "head.json").exists()
    assert isinstance(families.load_drug_type_head(paths.models / "drug_type_spacy"), SpacyDrugTypeHead)
    for name in ("hints_spacy", "spans_spacy"):
        assert (paths.models / name / "model").is_dir()
    reports = paths.reports / "tiny"
    scores = families.read_scores(families.scores_path(reports, "spacy"))
    assert tuple(scores.columns) == (*families.SCORE_COLUMNS, families.VENDOR_COLUMN)
    for rotation in ("m1", "m2", families.IN_MARKET):
        assert set(scores.loc[scores["rotation"] == rotation, "part"]) == {"val", "test"}
    assert families.score_matrix(scores).shape == (len(scores), len(DRUG_TYPES))
    facts = json.loads(families.info_path(reports, "spacy").read_text())
    assert facts["family"] == "spacy" and facts["texts_per_second"] > 0
    assert set(facts["quick_macro_f1"]) == {"m1", "m2", families.IN_MARKET}
    assert {"hints", "quantity", "origin_text_only"} <= set(facts["hints_spans"]["gold_test"])
    assert info["train_records"] == len(TRAIN) * 2
    y = binarize(list(scores["labels"]))
    assert y.shape[1] == len(DRUG_TYPES)

    import mlflow

    runs = mlflow.search_runs(experiment_names=["narcotag"])
    assert (runs["tags.stage"] == "train_spacy").any() and (runs["tags.family"] == "spacy").any()
