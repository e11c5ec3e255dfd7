"""Category mapping, reviewed-label overrides and leak-free splits."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from pipeline.labels.categories import category_path_key, map_category
from pipeline.labels.conflicts import label_conflict
from pipeline.labels.reviewed import ReviewedLabelsError, load_reviewed_labels
from pipeline.prepare import PrepareParams, build_labelled, leakage, lomo_markets, market_key, split_groups


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("Drugs/Cannabis/Weed", ("cannabis",)),
        ("Drugs & Chemicals/Cannabis & Hashish/Synthetic", ("other_drug",)),
        ("Drugs and Chemicals/Stimulants/Crack", ("cocaine",)),
        ("Drugs/Stimulants/Prescription", ("prescription_stimulant",)),
        ("Drugs & Chemicals/Stimulants/Adderal & Vyvanse", ("prescription_stimulant",)),
        ("Drugs & Chemicals/Opioids/Fentanyl & RCs", ("synthetic_opioid",)),
        ("Drugs and Chemicals/Opiates/Oxycodone", ("prescription_opioid",)),
        ("Drugs/Disassociatives/GHB", ("ghb",)),
        ("Drugs/Ecstasy/Pills", ("mdma",)),
        ("Drugs & Chemicals/Ecstasy/Methylone & BK", ("cathinone",)),
        ("Drugs/Psychedelics/Salvia", ("other_drug",)),
        ("Guides & Tutorials/Drugs/Drugs", ("non_drug",)),  # a guide about drugs is no drug offer
        ("Drug paraphernalia/Scales", ("non_drug",)),
        ("Services/Money", ("non_drug",)),
        ("Home » Drugs » Stimulants » Cocaine", ("cocaine",)),
        # coarse categories are weak: no label rather than a forced one
        ("Drugs/Other", None),
        ("Drugs/Prescription", None),
        ("Drugs & Chemicals/Stimulants/Other", None),
        ("Drugs and Chemicals", None),
        ("Drugs/Opioids", None),
        ("Counterfeit Items/Stimulants/Cocaine", None),  # misfiled one-off
        (None, None),
        ("", None),
    ],
)
def test_map_category(category: str | None, expected: tuple[str, ...] | None) -> None:
    assert map_category(None, category) == expected


def test_category_path_key_normalises_separators() -> None:
    assert category_path_key("Home » Drugs › Cocaine") == "/drugs/cocaine/"
    assert category_path_key("Drugs/Stimulants/Cocaine") == "/drugs/stimulants/cocaine/"


@pytest.mark.parametrize(
    ("market", "key"),
    [
        ('AlphaBay (README calls it "DNM")', "alphabay"),
        ("Agora", "agora"),
        ("TorreZ", "torrez"),
        (None, "unknown"),
    ],
)
def test_market_key(market: str | None, key: str) -> None:
    assert market_key(market) == key


def _records(n_vendors: int = 40, per_vendor: int = 5) -> pd.DataFrame:
    rows = []
    for v in range(n_vendors):
        for i in range(per_vendor):
            rid = f"r{v}-{i}"
            rows.append(
                {
                    "id": rid, "source": "s", "kind": "listing", "market": "Alpha" if v % 2 else "Beta",
                    "vendor": f"vendor{v}", "lang": "en", "title": f"t{v}-{i}", "text": f"text {v} {i}",
                    "text_folded": f"text {v} {i}", "ships_from_raw": None, "ships_to_raw": None,
                    "category_raw": "Drugs/Cannabis/Weed" if i % 2 else "Drugs/Other",
                    # vendor v's listing 0 is a near-copy of vendor v+1's listing 0 (copied titles)
                    "dup_group": f"g{v - (v % 2)}-0" if i == 0 else f"g{rid}", "is_representative": True,
                }
            )  # fmt: skip
    frame = pd.DataFrame(rows)
    frame.loc[(frame["id"].str.endswith("-0")) & (frame.index % 10 != 0), "is_representative"] = False
    return frame


def test_no_vendor_and_no_dup_group_crosses_splits() -> None:
    labelled = build_labelled(_records(), PrepareParams(test_fraction=0.3, val_fraction=0.2), reviewed={})
    assert set(labelled["split"]) == {"train", "val", "test"}
    assert leakage(labelled) == {"vendors_across_splits": 0, "dup_groups_across_splits": 0}
    # deduplicated before splitting: only representatives remain
    assert labelled["dup_group"].is_unique


def test_groups_join_vendors_that_share_a_duplicate() -> None:
    groups = split_groups(["a", "b", "c", None], ["g1", "g1", "g2", "g3"])
    assert groups[0] == groups[1] != groups[2] != groups[3]


def test_weak_categories_stay_unlabelled_and_reviewed_labels_override() -> None:
    records = _records(4, 2)
    reviewed = {"r1-0": ["cocaine"], "r2-1": ["non_drug"]}
    labelled = build_labelled(records, PrepareParams(), reviewed).set_index("id")
    assert labelled.loc["r1-1", "labels"] == ["cannabis"]
    assert labelled.loc["r1-1", "label_source"] == "category"
    assert labelled.loc["r2-1", "labels"] == ["non_drug"]
    assert labelled.loc["r2-1", "label_source"] == "reviewed"
    assert labelled.loc["r1-0", "labels"] == ["cocaine"]  # kept although not a representative: reviewed
    assert labelled.loc["r3-1", "labels"] == ["cannabis"]
    assert "r3-0" not in labelled.index  # a non-representative duplicate without review is dropped
    assert labelled.loc["r0-0", "labels"] is None  # weak category ("Drugs/Other"), not reviewed


@pytest.mark.parametrize(
    ("text", "codes", "source"),
    [
        # the text names another substance than the category: the category is not trusted
        ("50 x oxycodone 20mg", ("benzodiazepine",), "category_conflict"),
        ("kratom red vein 250g", ("psychedelic",), "category_conflict"),
        ("fentanyl patch 10 x 25ug", ("heroin",), "category_conflict"),
        ("10 x Adderall 30mg - amphetamine salts", ("prescription_stimulant",), None),  # salts = adderall
        ("0.5g ICE (meth)amphetamine shard", ("methamphetamine",), None),  # not amphetamine
        ("500g spice blend - synthetic cannabis", ("other_drug",), None),
        ("100ml GBL liquid ecstasy", ("ghb",), None),
        # a bundle: one of the named codes is the category's
        ("5g hash + 5g mdma", ("mdma",), None),
        ("xanax 2mg x 10 + tramadol", ("benzodiazepine",), None),
        # nothing unambiguous named: the category stands
        ("og kush 7g", ("cannabis",), None),
        ("blue punisher 10 pills", ("mdma",), None),
        # a non_drug category is never overridden (a book may name a drug)
        ("the heroin diaries (ebook)", ("non_drug",), None),
        # placeholders that name no drug
        ("Custom listing for j****k", ("cannabis",), "placeholder"),
        ("TIP JAR - thank you", ("cocaine",), "placeholder"),
        ("Shipping and handling for up to 6 items", ("cannabis",), "placeholder"),
        ("EXPRESS SHIPPING", ("mdma",), "placeholder"),
        ("Private listing", ("non_drug",), "placeholder"),
        # ... but a placeholder that names a drug is an offer of it
        ("Custom listing: 10 pills Adderall XR 30mg", ("prescription_stimulant",), None),
        ("Custom order ketamine 5g", ("dissociative",), None),
        # shipping words inside a real offer are not a placeholder
        ("1g cocaine free shipping", ("cocaine",), None),
        ("Shipping EU: 10g amnesia haze", ("cannabis",), None),
        # tip jars, tracking, reships and shipping tiers anywhere in a title that names no drug
        ("Our little tip jar :)", ("benzodiazepine",), "placeholder"),
        ("Tracking number add-on for a reship", ("other_drug",), "placeholder"),
        ("Special order for buyer x7", ("amphetamine",), "placeholder"),
        ("Priority mail tier (up to 4 items)", ("cannabis",), "placeholder"),
        # a non-drug word makes it an offer of that good, so the non_drug label stands
        ("Custom listing: two boxes of 9mm ammo", ("non_drug",), None),
        # THC products filed as synthetic cannabinoids, synthetic cannabinoids filed as benzos
        ("Rick Simpson oil, syringe of 2 grams", ("other_drug",), "category_conflict"),
        ("Strawberry THC e-liquid, 30ml bottle", ("other_drug",), "category_conflict"),
        ("Synthetic THC e-liquid 30ml", ("other_drug",), None),
        ("5F-AEB powder, half a kilo", ("benzodiazepine",), "category_conflict"),
        ("MMB-2201 research powder 50 grams", ("cannabis",), "category_conflict"),
        # goods the contract calls non_drug, filed under a drug, naming no drug and no amount
        ("ATM hacking toolkit bundle", ("cocaine",), "non_drug_goods"),
        ("Fresh CVV + fullz, US bins", ("dissociative",), "non_drug_goods"),
        ("King size rolling papers, 50 booklets", ("cannabis",), "non_drug_goods"),
        ("Marquis reagent dropper bottle", ("mdma",), "non_drug_goods"),
        ("Bodyweight training plan (ebook)", ("steroid",), "non_drug_goods"),
        ("Variable-voltage vape battery with USB charger", ("cannabis",), "non_drug_goods"),
        ("Single-punch tablet press, refurbished", ("benzodiazepine",), "non_drug_goods"),
        # ... but not when the listing names a drug or an amount of something
        ("20 x orange rhino pills, reagent tested", ("mdma",), None),
        ("Heroin, gun powder grade, 2g bag", ("heroin",), None),
        ("5 x blue battery pills, 200mg MDMA", ("mdma",), None),
        ("Vape battery + 1g live resin pod", ("cannabis",), None),
        ("How to make cannabutter (guide)", ("non_drug",), None),  # a non_drug category stands
    ],
)
def test_label_conflict(text: str, codes: tuple[str, ...], source: str | None) -> None:
    found = label_conflict(text, codes)
    assert (found[0] if found else None) == source


def test_conflicting_and_placeholder_labels_are_set_aside_with_a_reason() -> None:
    records = _records(4, 2)
    texts = {"r1-1": "10x oxycodone 80mg", "r3-1": "custom listing for someone"}
    for rid, text in texts.items():
        records.loc[records["id"] == rid, ["text", "text_folded"]] = text
    labelled = build_labelled(records, PrepareParams(), reviewed={"r3-1": ["cannabis"]}).set_index("id")
    assert labelled.loc["r1-1", "labels"] is None
    assert labelled.loc["r1-1", "label_source"] == "category_conflict"
    assert labelled.loc["r1-1", "label_note"] == "text names prescription_opioid; category says cannabis"
    assert labelled.loc["r3-1", "labels"] == ["cannabis"]  # a reviewed label beats every check
    assert labelled.loc["r2-1", "label_source"] == "category"
    kept = build_labelled(records, PrepareParams(drop_label_conflicts=False), reviewed={}).set_index("id")
    assert kept.loc["r1-1", "labels"] == ["cannabis"]
    assert kept.loc["r1-1", "label_source"] == "category"


def test_lomo_markets_need_enough_labels() -> None:
    labelled = build_labelled(_records(), PrepareParams(), reviewed={})
    assert lomo_markets(labelled, min_records=10) == ["alpha", "beta"]
    assert lomo_markets(labelled, min_records=10_000) == []


def test_reviewed_labels_file(tmp_path: Path) -> None:
    path = tmp_path / "reviewed.jsonl"
    path.write_text(
        json.dumps({"id": "a", "drug_types": ["mdma"]})
        + "\n"
        + json.dumps({"id": "a", "drug_types": ["non_drug", "mdma"]})
        + "\n"
    )
    assert load_reviewed_labels(path) == {"a": ["mdma"]}  # latest decision wins; non_drug exclusive
    assert load_reviewed_labels(tmp_path / "absent.jsonl") == {}
    path.write_text(json.dumps({"id": "a", "drug_types": ["crack-ish"]}) + "\n")
    with pytest.raises(ReviewedLabelsError, match="unknown drug_types"):
        load_reviewed_labels(path)
