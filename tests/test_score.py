"""narcotag score: contract output on the sample, ids, every input format, resume after kill -9,
idempotence, duplicate ids across chunks, parallel = serial, price analytics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

pytest.register_assert_rewrite("score_fixtures")

from score_fixtures import MODEL_URI, REPO, check_labelled, every_format, generic_rows, small_params  # noqa: E402

from pipeline.clean import AccountingError  # noqa: E402
from pipeline.score import (  # noqa: E402
    BatchMismatch,
    SchemaDrift,
    ScoreParams,
    check_fields,
    price_analytics,
    read_labelled,
    score,
)

pytest_plugins = ["score_fixtures"]  # fixtures: tiny_project, registry


def test_sample_scored_to_contract_with_training_accounting(registry, tmp_path):
    """The sample folder is read as training reads it: same per-source counts as the clean stage, ids of
    the cleaned records, registry version in every record, contract-valid JSONL."""
    out = tmp_path / "labelled.jsonl"
    summary = score([registry.sample], out, MODEL_URI, params=small_params())
    clean_report = json.loads((registry.root / "data/interim/clean_report.json").read_text())
    assert summary["accounting_ok"] and summary["read"] == summary["scored"] + summary["quarantined"]
    assert summary["read"] == clean_report["totals"]["read"]
    assert summary["scored"] == clean_report["totals"]["kept"]
    for name, source in clean_report["sources"].items():
        assert summary["sources"][name]["read"] == source["read"], name
        assert summary["sources"][name]["scored"] == source["kept"], name
    records = list(read_labelled(out))
    cleaned = pd.read_parquet(registry.root / "data/interim/records.parquet", columns=["id"])
    assert sorted(r["id"] for r in records) == sorted(cleaned["id"])  # the cleaned records' ids, unchanged
    assert {r["model"]["version"] for r in records} == {"1"}
    assert all(r["text"] and r["provenance"]["file"] for r in records)
    assert summary["outputs"]["quarantine"] == str(tmp_path / "labelled.quarantine.jsonl")
    quarantine = _jsonl(Path(summary["outputs"]["quarantine"]))
    assert len(quarantine) == summary["quarantined"]
    assert all(q["reason"] and q["provenance"]["file"] for q in quarantine)
    checked = check_labelled(out)
    assert checked is None or f"{summary['scored']} records, 0 break the contract" in checked


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_dir_and_file_formats_pass_the_contract(tiny_project, tmp_path, fmt):
    out = tmp_path / f"labelled.{fmt}"
    summary = score([tiny_project.sample / "listings.jsonl"], out, tiny_project.models, params=small_params())
    assert summary["scored"] > 40
    checked = check_labelled(out)
    assert checked is None or "0 break the contract, 0 duplicate ids" in checked
    given = {row["id"] for row in generic_rows(tiny_project.sample)}
    assert {r["id"] for r in read_labelled(out)} <= given


def test_every_input_format(tiny_project, tmp_path):
    """HTML folder, CSV, JSONL, Parquet and a Telegram result.json: each scored, ids passed through."""
    inputs = every_format(tiny_project.sample, tmp_path / "in")
    for kind, path in inputs.items():
        out = tmp_path / f"out-{kind}"
        summary = score([path], out, tiny_project.models, params=small_params())
        records = list(read_labelled(out))
        assert summary["read"] == summary["scored"] + summary["quarantined"], kind
        assert len(records) == summary["scored"] > 0, kind
        assert all(r["drug_types"] and r["provenance"]["adapter"] for r in records), kind
        if kind in ("jsonl", "parquet"):
            given = {row["id"] for row in generic_rows(tiny_project.sample)}
            assert {r["id"] for r in records} <= given, kind
        if kind == "telegram":
            assert all(r["id"].startswith("tg:") and r["kind"] == "ad" for r in records)
    # the whole folder at once: split by kind, every source accounted for
    summary = score([tmp_path / "in"], tmp_path / "out-all", tiny_project.models, params=small_params())
    assert len(summary["sources"]) == len(inputs)


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _manifest_chunks(out: Path) -> int:
    try:
        return len(json.loads((out / "manifest.json").read_text())["chunks"])
    except (OSError, ValueError, KeyError):
        return 0


def test_resume_after_kill_9(registry, tmp_path):
    """SIGKILL the scoring process once some chunks exist (its two workers die with it); the same command
    then finishes the batch: record count and content equal an uninterrupted run, no duplicates."""
    inputs = [registry.sample / "listings.jsonl", registry.sample / "agora_export.csv"]
    reference = score(inputs, tmp_path / "ref", MODEL_URI, fmt="jsonl", params=small_params(chunk_size=25))
    out = tmp_path / "killed"
    command = [
        sys.executable, "-m", "pipeline.cli", "score", *map(str, inputs), "--out", str(out),
        "--format", "jsonl", "--model", MODEL_URI, "--chunk-size", "25", "--workers", "2",
        "--params", str(REPO / "params.yaml"),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    deadline = time.monotonic() + 60
    while _manifest_chunks(out) < 3 and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    workers = psutil.Process(process.pid).children()
    os.kill(process.pid, signal.SIGKILL)  # the scoring process only: its workers must not outlive it
    process.wait()
    gone, alive = psutil.wait_procs(workers, timeout=10)
    for orphan in alive:  # keep the machine clean even when the assertion below fails
        orphan.kill()
    assert not alive, "worker processes outlived the killed scoring process"
    assert len(workers) == 2
    done_at_kill = _manifest_chunks(out)
    assert 3 <= done_at_kill < reference["chunks"], "the run was not killed mid-way"
    assert not (out / "summary.json").exists()

    rerun = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "resuming" in rerun.stderr and "accounting ok" in rerun.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["read"], summary["scored"], summary["quarantined"]) == (
        reference["read"], reference["scored"], reference["quarantined"],
    )  # fmt: skip
    killed = [r for part in sorted((out / "parts").glob("part-*")) for r in _jsonl(part)]
    expected = list(read_labelled(tmp_path / "ref"))
    assert len({r["id"] for r in killed}) == len(killed) == len(expected)
    assert killed == expected
    assert (out / "quarantine.jsonl").read_text() == (tmp_path / "ref" / "quarantine.jsonl").read_text()


def test_rerun_is_a_no_op_and_other_settings_are_refused(tiny_project, tmp_path):
    inputs = [tiny_project.sample / "listings.jsonl"]
    out = tmp_path / "batch"
    first = score(inputs, out, tiny_project.models, params=small_params(chunk_size=100))
    parts = {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()}
    again = score(inputs, out, tiny_project.models, params=small_params(chunk_size=100))
    assert {p.name: p.stat().st_mtime_ns for p in (out / "parts").iterdir()} == parts  # nothing rescored
    assert (again["read"], again["scored"]) == (first["read"], first["scored"])
    with pytest.raises(BatchMismatch, match="chunk_size"):
        score(inputs, out, tiny_project.models, params=small_params(chunk_size=50))
    fresh = score(inputs, out, tiny_project.models, params=small_params(chunk_size=50), fresh=True)
    assert fresh["chunks"] > first["chunks"] and fresh["scored"] == first["scored"]


def test_duplicate_ids_across_chunks_are_quarantined(tiny_project, tmp_path):
    rows = generic_rows(tiny_project.sample, limit=30)
    data = tmp_path / "dups.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:5]))
    summary = score([data], tmp_path / "out", tiny_project.models, params=small_params(chunk_size=10))
    records = list(read_labelled(tmp_path / "out"))
    assert len({r["id"] for r in records}) == len(records)
    reasons = [q["reason"] for q in _jsonl(tmp_path / "out" / "quarantine.jsonl")]
    assert reasons.count("duplicate_id") == 5
    assert summary["read"] == 35 == summary["scored"] + summary["quarantined"]


def test_two_workers_give_the_serial_output(tiny_project, tmp_path):
    inputs = [tiny_project.sample / "listings.jsonl"]
    score(inputs, tmp_path / "serial.jsonl", tiny_project.models, params=small_params(chunk_size=60))
    score(inputs, tmp_path / "pool.jsonl", tiny_project.models, params=small_params(chunk_size=60), workers=2)
    assert (tmp_path / "serial.jsonl").read_text() == (tmp_path / "pool.jsonl").read_text()


def test_price_analytics_per_gram_and_unit():
    params = ScoreParams(rates_date="2025-01-01", usd_rates={"USD": 1.0, "EUR": 1.1})
    grams = price_analytics(55.0, "EUR", {"total_grams": 5, "units": None}, params)
    assert grams == {
        "price_usd": 60.5,
        "usd_per_gram": 12.1,
        "usd_per_unit": None,
        "rates_date": "2025-01-01",
    }
    units = price_analytics(100.0, "usd", {"total_grams": None, "units": 50}, params)
    assert units["usd_per_unit"] == 2.0 and units["usd_per_gram"] is None
    unknown = price_analytics(1.0, "XYZ", {"total_grams": 1, "units": None}, params)
    assert unknown["price_usd"] is None and unknown["usd_per_gram"] is None
    free = price_analytics(0.0, "USD", {"total_grams": 1, "units": None}, params)
    assert free["price_usd"] == 0.0 and free["usd_per_gram"] is None


def test_parquet_refuses_to_drop_an_unknown_field(tiny_project, tmp_path):
    score([tiny_project.sample / "listings.jsonl"], tmp_path / "o.jsonl", tiny_project.models,
          params=small_params())  # fmt: skip
    record = next(read_labelled(tmp_path / "o.jsonl"))
    check_fields([record])
    record["quantities"] = [{"text": "5g", "start": 0, "end": 2, "new_key": 1}]
    with pytest.raises(SchemaDrift, match="new_key"):
        check_fields([record])


def test_accounting_error_is_raised_not_ignored(tiny_project, tmp_path, monkeypatch):
    from pipeline import score as score_module

    original = score_module.score_chunk

    def lossy(task, tagger=None):
        result = original(task, tagger)
        result["sources"] = {k: {**v, "kept": v["kept"] - 1} for k, v in result["sources"].items()}
        return result

    monkeypatch.setattr(score_module, "score_chunk", lossy)
    with pytest.raises(AccountingError):
        score(
            [tiny_project.sample / "listings.jsonl"],
            tmp_path / "o",
            tiny_project.models,
            params=small_params(),
        )


def test_heads_read_only_the_model_input_columns(tiny_project):
    """The Tagger tags a repeated row once, keyed on MODEL_INPUT_COLUMNS: that is only right while the
    heads read nothing else. A head that starts reading another column must be added there."""
    from pipeline.heads.registry import HEADS
    from pipeline.tagger import MODEL_INPUT_COLUMNS, Tagger

    tagger = Tagger.load(tiny_project.models)
    frame = pd.read_parquet(tiny_project.root / "data/interim/records.parquet").head(150)
    narrow = frame[list(MODEL_INPUT_COLUMNS)]
    for name in HEADS:
        assert tagger.heads[name].predict(narrow) == tagger.heads[name].predict(frame), name


def test_repeated_rows_are_tagged_once_into_separate_records(tiny_project):
    from pipeline.tagger import Tagger

    tagger = Tagger.load(tiny_project.models)
    frame = pd.read_parquet(tiny_project.root / "data/interim/records.parquet").head(60)
    twice = pd.concat([frame, frame.iloc[::2].assign(id=lambda f: f["id"] + "-again")], ignore_index=True)
    records = tagger.tag(twice)
    assert records[:60] == tagger.tag(frame)
    for again, first in zip(records[60:], records[:60:2], strict=True):
        assert again["id"] == first["id"] + "-again"
        assert {k: v for k, v in again.items() if k != "id"} == {k: v for k, v in first.items() if k != "id"}
        assert again["drug_type_scores"] is not first["drug_type_scores"]  # no shared nested values


def test_each_market_is_scored_with_its_own_class_mix(tiny_project, tmp_path):
    """The first pass estimates each market's mix from its records; every record of the market is tagged
    with that shift, whatever its chunk; the shifts are kept in the manifest and the mixes in the summary."""
    from pipeline.score import estimate_prior_shifts, expand_inputs
    from pipeline.tagger import Tagger

    inputs = [tiny_project.sample / "listings.jsonl"]
    small = score(inputs, tmp_path / "small.jsonl", tiny_project.models, params=small_params(chunk_size=37))
    large = score(inputs, tmp_path / "large.jsonl", tiny_project.models, params=small_params(chunk_size=5000))
    assert (tmp_path / "small.jsonl").read_text() == (tmp_path / "large.jsonl").read_text()
    mixes = small["prior_adaptation"]
    assert mixes and mixes == large["prior_adaptation"]
    for market in mixes.values():
        assert 30 <= market["used"] <= market["read"] <= market["used"] + 5  # a few quarantined
        assert 0.95 <= sum(market["estimated_mix"].values()) <= 1.6  # multi-label: shares of codes
    manifest = json.loads((tmp_path / "small.jsonl.score" / "manifest.json").read_text())
    assert set(manifest["priors"]["shifts"]) == set(mixes)

    # the records are what the Tagger gives with those shifts, and differ from tagging without them
    tagger = Tagger.load(tiny_project.models)
    again = estimate_prior_shifts(expand_inputs(inputs, None, None), tagger, 5000)
    assert again == manifest["priors"]  # seeded sample: the same input gives the same shifts
    plain = score(inputs, tmp_path / "plain.jsonl", tiny_project.models, params=small_params(prior_sample=0))
    assert plain["prior_adaptation"] == {}
    adapted, unadapted = (
        list(read_labelled(tmp_path / "small.jsonl")),
        list(read_labelled(tmp_path / "plain.jsonl")),
    )
    assert [r["id"] for r in adapted] == [r["id"] for r in unadapted]
    moved = sum(
        a["drug_type_scores"] != u["drug_type_scores"] for a, u in zip(adapted, unadapted, strict=True)
    )
    assert moved > len(adapted) // 2
    assert check_labelled(tmp_path / "small.jsonl") is None or "0 break the contract" in check_labelled(
        tmp_path / "small.jsonl"
    )


def test_the_mix_sample_is_one_bounded_uniform_sample_of_the_batch(tiny_project, tmp_path):
    """However many markets, the first pass keeps at most ``prior_sample`` listings; each market gets its
    share, and only markets with enough sampled records are adapted."""
    from pipeline.score import estimate_prior_shifts, expand_inputs
    from pipeline.tagger import Tagger

    tagger = Tagger.load(tiny_project.models)
    rows = generic_rows(tiny_project.sample)
    data = tmp_path / "six_markets.jsonl"
    with open(data, "w", encoding="utf-8") as f:
        for m in range(6):
            for i, row in enumerate(rows):
                f.write(json.dumps({**row, "id": f"m{m}-{i}", "market": f"market {m}"}) + "\n")
    specs = expand_inputs([data], None, None)
    full = estimate_prior_shifts(specs, tagger, 5000)
    assert len(full["markets"]) == 6
    sampled = estimate_prior_shifts(specs, tagger, 200)
    assert sampled["markets"] and set(sampled["markets"]) <= set(full["markets"])
    assert sum(m["used"] for m in sampled["markets"].values()) <= 200
    for key, market in sampled["markets"].items():
        assert 30 <= market["used"] < market["read"] == full["markets"][key]["read"] <= len(rows)
    assert set(sampled["shifts"]) == set(sampled["markets"])
    assert estimate_prior_shifts(specs, tagger, 0) == {"shifts": {}, "markets": {}}


def test_tagging_with_shifts_adapts_only_the_named_market(tiny_project):
    from pipeline.tagger import Tagger, prior_group_keys

    tagger = Tagger.load(tiny_project.models)
    frame = pd.read_parquet(tiny_project.root / "data/interim/records.parquet")
    frame = frame[frame["kind"] == "listing"].head(80).reset_index(drop=True)
    groups = prior_group_keys(frame)
    target = groups[0]
    cannabis = ["cannabis"]
    shift = [0.0] * 17
    shift[0] = 3.0  # cannabis is the first code: a market that sells far more of it
    plain = tagger.tag(frame)
    shifted = tagger.tag(frame, prior_shifts={target: shift})
    for group, p, s in zip(groups, plain, shifted, strict=True):
        if group == target:
            assert s["drug_type_scores"]["cannabis"] >= p["drug_type_scores"]["cannabis"]
        else:
            assert s == p
    assert any(
        s["drug_type_scores"]["cannabis"] > p["drug_type_scores"]["cannabis"]
        for s, p in zip(shifted, plain, strict=True)
    )
    # the same row in two markets is tagged once per market
    twin = pd.concat([frame.iloc[[0]], frame.iloc[[0]].assign(id="other-market", market="elsewhere")])
    first, second = tagger.tag(twin, prior_shifts={target: shift})
    assert first["drug_type_scores"] != second["drug_type_scores"]
    assert second["drug_type_scores"] == tagger.tag(twin.iloc[[1]])[0]["drug_type_scores"]
    assert cannabis  # the code the shift moves


def test_messenger_ads_are_not_adapted(tiny_project, tmp_path):
    """The adaptation was chosen on market listings; ads are tagged as they are, and the first pass does
    not sample them."""
    from pipeline.score import estimate_prior_shifts, expand_inputs
    from pipeline.tagger import Tagger, prior_group_key

    tagger = Tagger.load(tiny_project.models)
    frame = pd.read_parquet(tiny_project.root / "data/interim/records.parquet")
    ads = frame[frame["kind"] == "ad"].head(60).reset_index(drop=True)
    assert len(ads) and prior_group_key("ad", "some channel", "src") is None
    shift = [3.0] * 17
    everything = {name: shift for name in set(ads["market"].dropna()) | set(ads["source"].dropna()) | {""}}
    assert tagger.tag(ads, prior_shifts=everything) == tagger.tag(ads)
    telegram = expand_inputs([tiny_project.sample / "telegram"], None, None)
    assert estimate_prior_shifts(telegram, tagger, 5000) == {"shifts": {}, "markets": {}}


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_messenger_ads_keep_the_offer_decision_in_every_format(tiny_project, tmp_path, fmt):
    """The sample folder holds messenger ads: their ``is_offer``, ``offer_score`` and ad-detector evidence
    survive the typed formats (the quickstart scores the sample folder to Parquet)."""
    import shutil

    from pipeline import train
    from pipeline.config import Paths

    # the tiny project has no ad detector (an optional head): a copy of its models gets a small one
    project = tmp_path / "project"
    shutil.copytree(tiny_project.models, project / "models")
    params = train.TrainParams(ad_detector_seeds=(101,), ad_detector_messages_per_language=40, track=False)
    train.run("ad_detector", params, Paths(project))
    out = tmp_path / f"labelled.{fmt}"
    summary = score([tiny_project.sample], out, project / "models", params=small_params())
    records = list(read_labelled(out))
    assert len(records) == summary["scored"]
    ads = [r for r in records if r["kind"] == "ad"]
    listings = [r for r in records if r["kind"] == "listing"]
    assert ads and listings
    if fmt == "csv":  # CSV cells are text
        assert all(r["is_offer"] in ("True", "False") and 0 <= float(r["offer_score"]) <= 1 for r in ads)
    else:
        assert all(isinstance(r["is_offer"], bool) and 0 <= r["offer_score"] <= 1 for r in ads)
    assert all(r.get("is_offer") is None for r in listings)
    if fmt == "parquet":
        assert any(r["evidence"]["ad_detector"] for r in ads)
        assert all(e["polarity"] in (1, -1) for r in ads for e in r["evidence"]["ad_detector"])
    checked = check_labelled(out)
    assert checked is None or "0 break the contract" in checked


def _shop_rows() -> list[dict]:
    """A shop whose six listings name their drug and one whose title names nothing a model knows, plus a
    lone vendor with the same kind of title (the test's own phrases)."""
    named = [
        "Amnesia Haze weed buds 10g",
        "Cannabis indoor flowers Gorilla Glue 5g",
        "Hash Moroccan cannabis resin 25g",
        "Weed OG Kush buds 28g",
        "Cannabis White Widow flowers 3.5g",
        "Marijuana buds Lemon Haze 7g",
    ]
    rows = [
        {"id": f"gs-{i}", "kind": "listing", "market": "Testmarket", "vendor": "GreenShop", "title": title,
         "description": title, "price": 20 + i, "currency": "USD"}
        for i, title in enumerate(named)
    ]  # fmt: skip
    opaque = "Zorblax special batch 7"
    rows.append({"id": "gs-opaque", "kind": "listing", "market": "Testmarket", "vendor": "GreenShop",
                 "title": opaque, "description": opaque, "price": 30, "currency": "USD"})  # fmt: skip
    rows.append({"id": "solo-opaque", "kind": "listing", "market": "Testmarket", "vendor": "Solo",
                 "title": opaque, "description": opaque, "price": 30, "currency": "USD"})  # fmt: skip
    return rows


def test_each_vendors_other_listings_decide_an_opaque_listing(tiny_project, tmp_path, monkeypatch):
    """The second pass: a listing nothing claims takes its shop's code from the shop's other listings, in
    whichever chunk they are; a lone vendor's stays non_drug; the decisions are those of the in-memory
    step the evaluation uses; an interrupted second pass resumes to the same output."""
    import shutil

    import numpy as np

    import pipeline.score as score_module
    from pipeline.heads.vendor_context import VendorContextRule, decide_with_vendors, vendor_keys
    from pipeline.tagger import Tagger, prior_group_key
    from pipeline.taxonomy import DRUG_TYPES

    data = tmp_path / "shop.jsonl"
    rows = [*generic_rows(tiny_project.sample), *_shop_rows()]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    # the tiny model's thresholds, tuned on a handful of records, claim anything; at 0.9 only a title that
    # names its drug is claimed, as a model trained on a whole market claims them
    models = tmp_path / "models"
    shutil.copytree(tiny_project.models, models)
    thresholds_file = models / "drug_type" / "thresholds.json"
    thresholds_file.write_text(json.dumps(dict.fromkeys(json.loads(thresholds_file.read_text()), 0.9)))
    summary = score([data], tmp_path / "out.jsonl", models, params=small_params(chunk_size=3))
    records = {r["id"]: r for r in read_labelled(tmp_path / "out.jsonl")}
    assert records["gs-opaque"]["drug_types"] == ["cannabis"]
    context = records["gs-opaque"]["vendor_context"]
    assert context["filled"] and context["shifted"] and 3 <= context["listings"] <= 6
    assert (
        records["solo-opaque"]["drug_types"] == ["non_drug"]
        and records["solo-opaque"]["vendor_context"] is None
    )
    assert summary["vendor_context"]["filled"] >= 1 and summary["vendor_context"]["vendors"] > 10
    assert not (tmp_path / "out.jsonl.score" / "pre-parts").exists()
    assert summary["read"] == summary["scored"] + summary["quarantined"]

    # the same decisions as the step run on the whole batch at once (how families.py evaluates it)
    head = Tagger.load(models).heads["drug_type"]
    listed = list(records.values())
    keys = vendor_keys(
        [prior_group_key(r["kind"], r["market"], r["source"]) for r in listed], [r["vendor"] for r in listed]
    )
    scores = np.array([[r["drug_type_scores"][c] for c in DRUG_TYPES] for r in listed])
    expected = decide_with_vendors(scores, head.thresholds_, keys, VendorContextRule.of(head.params))
    with_context = [i for i, r in enumerate(listed) if r["vendor_context"] is not None]
    assert len(with_context) > 20
    assert [listed[i]["drug_types"] for i in with_context] == [expected[i] for i in with_context]

    # interrupted after the second pass wrote two chunks: the re-run finishes it, same output
    calls = {"n": 0}
    real_stats = score_module.chunk_stats

    def failing_stats(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("killed")
        return real_stats(*args, **kwargs)

    monkeypatch.setattr(score_module, "chunk_stats", failing_stats)
    with pytest.raises(RuntimeError, match="killed"):
        score([data], tmp_path / "again.jsonl", models, params=small_params(chunk_size=3))
    assert (tmp_path / "again.jsonl.score" / "pre-parts").exists()
    monkeypatch.setattr(score_module, "chunk_stats", real_stats)
    score([data], tmp_path / "again.jsonl", models, params=small_params(chunk_size=3))
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "out.jsonl").read_text()
    # two workers: the chunks and the second pass's re-decisions run in forked processes, same output
    score([data], tmp_path / "pool.jsonl", models, params=small_params(chunk_size=3), workers=2)
    assert (tmp_path / "pool.jsonl").read_text() == (tmp_path / "out.jsonl").read_text()
