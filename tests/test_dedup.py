"""Exact and near-duplicate grouping."""

from __future__ import annotations

from pipeline.dedup import NearDupParams, dedup_key, group_duplicates


def test_exact_duplicates_share_group_and_first_is_representative() -> None:
    ids = ["a", "b", "c"]
    texts = ["Cocaine 1g pure", "cocaine 1G   pure!!", "Ketamine 5g needles"]
    groups, rep = group_duplicates(ids, texts, NearDupParams(enabled=False))
    assert groups[0] == groups[1] != groups[2]
    assert rep == [True, False, True]


def test_near_duplicates_found_distinct_offers_kept_apart() -> None:
    texts = [
        "Super Lemon Haze premium buds 10g free shipping worldwide",
        "Super Lemon Haze premium buds 10g - free shipping worldwide!!",  # same after normalisation
        "Super Lemon Haze premium buds 20g free shipping worldwide",  # another tier: a distinct offer
        "Amnesia Haze premium buds 10g free shipping worldwide",  # another strain
        "Super Lemon Haze premium buds 10g free shiping worldwide",  # near copy with a typo
    ]
    ids = [f"r{i}" for i in range(len(texts))]
    groups, rep = group_duplicates(ids, texts, NearDupParams(threshold=0.8))
    assert groups[0] == groups[1] == groups[4]
    assert groups[2] != groups[0]
    assert groups[3] != groups[0]
    assert sum(rep) == 3


def test_groups_are_stable_ids_of_representatives() -> None:
    texts = ["same text here", "same text here"]
    g1, _ = group_duplicates(["x", "y"], texts, NearDupParams())
    g2, _ = group_duplicates(["x", "y"], texts, NearDupParams())
    assert g1 == g2 and g1[0].startswith("g")


def test_dedup_key_normalises_case_and_punctuation() -> None:
    assert dedup_key("MDMA -- 84%!") == dedup_key("mdma 84")
