"""Out of the review database: reviewed.jsonl into prepare, Label Studio, Hugging Face, agreement, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from test_review_support import write_batch
from typer.testing import CliRunner

from pipeline.cli import app as cli
from pipeline.labels.reviewed import load_reviewed_labels
from pipeline.prepare import PrepareParams, build_labelled
from pipeline.review.agreement import agreement, write_agreement
from pipeline.review.export import export_hf_dataset, export_reviewed, read_jsonl
from pipeline.review.labelstudio import export_tasks, import_tasks, label_config
from pipeline.review.storage import ReviewStore, open_review

CONTRACT_FIELDS = {
    "id", "drug_types", "quantity", "ships_from", "ships_to", "laundering_hints", "reviewer", "reviewed_at",
    "model_version",
}  # fmt: skip


@pytest.fixture
def store(tmp_path: Path) -> ReviewStore:
    review, _, _ = open_review(write_batch(tmp_path / "batch.jsonl"), tmp_path / "review.db")
    return review


def cleaned(ids_categories: list[tuple[str, str, str]]) -> pd.DataFrame:
    """Cleaned records (the columns prepare reads) for (id, market, category_raw)."""
    rows = []
    for i, (rid, market, category) in enumerate(ids_categories):
        rows.append(
            {
                "id": rid, "source": "test", "kind": "listing", "market": market, "vendor": f"v{i}",
                "lang": "en", "title": rid, "text": rid, "text_folded": rid, "ships_from_raw": None,
                "ships_to_raw": None, "category_raw": category, "dup_group": f"g{i}",
                "is_representative": True,
            }
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_export_has_the_contract_fields_and_latest_decision(store: ReviewStore, tmp_path: Path) -> None:
    store.decide("r-cocaine-nl", "alice", {"drug_types": ["cocaine"], "ships_from": ["NL"]})
    store.decide(
        "r-cocaine-nl", "bob", {"drug_types": ["cocaine", "mdma"], "quantity": {"total_grams": "3,5"}}
    )
    store.decide("r-xanax-pl", "alice", {"drug_types": ["benzodiazepine"], "laundering_hints": ["bitcoin"]})
    store.decide("f-03", "alice", {"drug_types": ["mdma"]})
    store.undo("alice")  # takes back f-03
    out = tmp_path / "labels" / "reviewed.jsonl"
    counts = export_reviewed(store, out)
    assert counts == {"exported": 2, "kept": 0, "written": 2, "corrections": 2}
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["r-cocaine-nl", "r-xanax-pl"]
    assert all(r.keys() >= CONTRACT_FIELDS for r in rows)
    cocaine = rows[0]
    assert cocaine["drug_types"] == ["cocaine", "mdma"] and cocaine["reviewer"] == "bob"
    assert cocaine["quantity"] == {"total_grams": 3.5, "units": None, "dose_mg": None, "volume_ml": None}
    assert cocaine["model_version"] == "test-1" and cocaine["reviewed_at"].endswith("Z")
    assert cocaine["changed"] == ["drug_types", "quantity", "ships_from", "ships_to", "laundering_hints"]
    # prepare's reader accepts it as is
    assert load_reviewed_labels(out) == {
        "r-cocaine-nl": ["cocaine", "mdma"],
        "r-xanax-pl": ["benzodiazepine"],
    }


def test_export_merges_into_the_tracked_file(store: ReviewStore, tmp_path: Path) -> None:
    out = tmp_path / "reviewed.jsonl"
    out.write_text(
        json.dumps({"id": "from-elsewhere", "drug_types": ["heroin"], "reviewed_at": "2020-01-01T00:00:00Z"})
        + "\n"
        + json.dumps({"id": "r-xanax-pl", "drug_types": ["ghb"], "reviewed_at": "2099-01-01T00:00:00Z"})
        + "\n"
        + json.dumps({"id": "r-cocaine-nl", "drug_types": ["ghb"], "reviewed_at": "2000-01-01T00:00:00Z"})
        + "\n"
    )
    store.decide("r-cocaine-nl", "alice", {"drug_types": ["cocaine"]})
    store.decide("r-xanax-pl", "alice", {"drug_types": ["benzodiazepine"]})
    counts = export_reviewed(store, out)
    merged = read_jsonl(out)
    assert counts["kept"] == 2 and counts["written"] == 3
    assert merged["from-elsewhere"]["drug_types"] == ["heroin"]  # another analyst's line survives
    assert merged["r-xanax-pl"]["drug_types"] == ["ghb"]  # that line is newer than ours
    assert merged["r-cocaine-nl"]["drug_types"] == ["cocaine"]  # ours is newer
    export_reviewed(store, out, merge=False)
    assert set(read_jsonl(out)) == {"r-cocaine-nl", "r-xanax-pl"}


def test_a_correction_changes_the_next_models_training_labels(store: ReviewStore, tmp_path: Path) -> None:
    """review -> export -> load_reviewed_labels -> build_labelled: the correction is the training label."""
    records = cleaned(
        [
            ("r-cocaine-nl", "Nightshade", "Drugs/Cannabis/Hash"),  # the market says cannabis
            ("f-01", "Nightshade", "Drugs/Ecstasy/Pills"),
            ("f-02", "Nightshade", "Drugs/Stimulants/Speed"),
        ]
    )
    no_reviews = load_reviewed_labels(tmp_path / "none.jsonl")
    kept = build_labelled(records, PrepareParams(drop_label_conflicts=False), no_reviews)
    row = kept.set_index("id").loc["r-cocaine-nl"]
    assert list(row["labels"]) == ["cannabis"] and row["label_source"] == "category"
    # by default the misfiling is set aside (the text names cocaine): no label until someone reviews it
    row = build_labelled(records, PrepareParams(), no_reviews).set_index("id").loc["r-cocaine-nl"]
    assert row["labels"] is None and row["label_source"] == "category_conflict"

    store.decide("r-cocaine-nl", "alice", {"drug_types": ["cocaine"]})  # the analyst corrects it
    out = tmp_path / "data" / "labels" / "reviewed.jsonl"
    export_reviewed(store, out)
    after = build_labelled(records, PrepareParams(), load_reviewed_labels(out)).set_index("id")
    assert list(after.loc["r-cocaine-nl", "labels"]) == ["cocaine"]
    assert after.loc["r-cocaine-nl", "label_source"] == "reviewed"
    assert after.loc["f-01", "label_source"] == "category"  # untouched records keep their market label


def test_label_studio_round_trip(store: ReviewStore, tmp_path: Path) -> None:
    store.decide("r-xanax-pl", "alice", {"drug_types": ["benzodiazepine"], "ships_from": ["PL"]})
    out = tmp_path / "ls" / "tasks.json"
    counts = export_tasks(store, out, annotations=True)
    tasks = json.loads(out.read_text())
    assert counts["tasks"] == len(tasks) and counts["with_annotations"] == 1
    task = next(t for t in tasks if t["data"]["record_id"] == "r-cocaine-nl")
    assert task["data"]["text"].startswith("🔥 Cocaine")
    prediction = task["predictions"][0]
    assert prediction["model_version"] == "test-1" and prediction["score"] == pytest.approx(0.2)
    by_name = {r["from_name"]: r for r in prediction["result"] if r["type"] != "labels"}
    assert by_name["drug_types"]["value"]["choices"] == ["cocaine"]
    assert by_name["total_grams"]["value"]["number"] == 5
    assert by_name["ships_from"]["value"]["text"] == ["NL"]
    spans = [r["value"] for r in prediction["result"] if r["type"] == "labels"]
    text = task["data"]["text"]
    assert all(text[s["start"] : s["end"]] == s["text"] for s in spans)
    assert {"Cocaine", "5g", "Netherlands", "BTC"} <= {s["text"] for s in spans}
    config = out.with_name("tasks.label_config.xml").read_text()
    assert config == label_config() and '<Choices name="drug_types"' in config

    # an annotator in Label Studio corrects the cocaine task; we import the export
    task["annotations"] = [
        {
            "completed_by": {"email": "ann@example.org"},
            "was_cancelled": False,
            "created_at": "2025-01-01T00:00:00Z",
            "result": [
                {"from_name": "drug_types", "type": "choices", "value": {"choices": ["cocaine", "cannabis"]}},
                {"from_name": "ships_from", "type": "textarea", "value": {"text": ["nl, be"]}},
                {"from_name": "units", "type": "number", "value": {"number": 2}},
            ],
        },
        {"completed_by": 9, "was_cancelled": True, "result": []},
    ]
    bad = {"data": {"record_id": "r-xanax-pl"}, "annotations": [{"completed_by": 3, "result": [
        {"from_name": "drug_types", "type": "choices", "value": {"choices": ["crack"]}}]}]}  # fmt: skip
    unknown = {"data": {"record_id": "nope"}, "annotations": [{"completed_by": 3, "result": []}]}
    exported = tmp_path / "ls_export.json"
    exported.write_text(json.dumps([task, bad, unknown]))
    result = import_tasks(store, exported)
    assert result["imported"] == 1 and result["skipped"] == 2
    state = store.state("r-cocaine-nl", "ann@example.org")
    assert state.labels["drug_types"] == ["cannabis", "cocaine"]
    assert state.labels["ships_from"] == ["NL", "BE"]
    assert state.labels["quantity"]["units"] == 2 and state.labels["quantity"]["total_grams"] == 5
    assert state.labels["laundering_hints"] == ["bitcoin", "crypto_address"]  # not in the annotation: kept
    assert store.decisions()[-1]["source"] == "label-studio"


def test_hugging_face_dataset(store: ReviewStore, tmp_path: Path) -> None:
    from datasets import load_from_disk

    store.decide("r-cocaine-nl", "alice", {"drug_types": ["cocaine"], "quantity": {"total_grams": 5}})
    store.decide("r-xanax-pl", "bob", {"drug_types": ["benzodiazepine"], "laundering_hints": ["bitcoin"]})
    assert export_hf_dataset(store, tmp_path / "hf") == {"rows": 2}
    dataset = load_from_disk(str(tmp_path / "hf"))
    assert dataset.num_rows == 2
    names = dataset.features["drug_types"].feature.names
    row = dataset[0]
    assert row["id"] == "r-cocaine-nl" and row["text"].startswith("🔥 Cocaine")
    assert [names[i] for i in row["drug_types"]] == ["cocaine"] and row["total_grams"] == 5.0
    hint_names = dataset.features["laundering_hints"].feature.names
    assert [hint_names[i] for i in dataset[1]["laundering_hints"]] == ["bitcoin"]


def test_agreement_kappa_per_head(tmp_path: Path) -> None:
    store, _, _ = open_review(write_batch(tmp_path / "b.jsonl"), tmp_path / "r.db", blind_sample=1.0)
    ids = [f"f-{i:02d}" for i in range(12)]
    for i, rid in enumerate(ids):
        first = ["cannabis"] if i % 2 else ["mdma"]
        second = first if i < 10 else (["mdma"] if i % 2 else ["cannabis"])  # 2 disagreements
        origin = ["GB"] if i % 3 else ["NL"]
        store.decide(
            rid, "alice", {"drug_types": first, "ships_from": origin, "laundering_hints": ["bitcoin"]}
        )
        store.decide(
            rid, "bob", {"drug_types": second, "ships_from": origin, "laundering_hints": ["bitcoin"]}
        )
    assert all(d["round"] == 2 for d in store.decisions() if d["reviewer"] == "bob")
    report = agreement(store)
    assert report["pairs"] == 12 and report["reviewer_pairs"] == {"alice / bob": 12}
    cannabis = report["heads"]["drug_types"]["per_code"]["cannabis"]
    # 12 pairs, 2 disagree, 6 and 6 positives each: p_o = 10/12, p_e = 0.5 -> kappa = 2/3
    assert cannabis["kappa"] == pytest.approx(2 / 3, abs=1e-3)
    assert cannabis["agreement"] == pytest.approx(10 / 12, abs=1e-3)
    assert report["heads"]["ships_from"]["kappa"] == pytest.approx(1.0)
    assert report["heads"]["laundering_hints"]["per_code"]["bitcoin"]["kappa"] is None  # no variation
    assert report["heads"]["quantity"]["total_grams"]["agreement"] == 1.0
    written = write_agreement(store, tmp_path / "reports" / "agreement.md")
    assert written == report
    assert "| drug_types | cannabis | 0.667 |" in (tmp_path / "reports" / "agreement.md").read_text()
    assert json.loads((tmp_path / "reports" / "agreement.json").read_text())["pairs"] == 12


# --- the command line ----------------------------------------------------------------------------------


def test_cli_review_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    scored = write_batch(tmp_path / "batch.jsonl")
    db = tmp_path / "review.db"
    served: dict[str, Any] = {}
    monkeypatch.setattr(
        "pipeline.review.app.serve", lambda app, host, port: served.update(host=host, port=port)
    )

    result = runner.invoke(
        cli, ["review", str(scored), "--db", str(db), "--port", "8123", "--blind-sample", "0.2"]
    )
    assert result.exit_code == 0, result.output
    assert served == {"host": "127.0.0.1", "port": 8123}
    assert ReviewStore(db).meta("blind_sample") == "0.2"

    result = runner.invoke(cli, ["review", str(scored), "--db", str(db), "--host", "0.0.0.0"])
    assert result.exit_code == 2 and "--token" in result.output
    result = runner.invoke(cli, ["review", "serve", str(scored), "--db", str(db), "--host", "0.0.0.0"],
                           env={"NARCOTAG_REVIEW_TOKEN": "t0ken"})  # fmt: skip
    assert result.exit_code == 0, result.output
    assert served["host"] == "0.0.0.0"

    ReviewStore(db).decide("r-cocaine-nl", "alice", {"drug_types": ["cocaine"]})
    out = tmp_path / "reviewed.jsonl"
    result = runner.invoke(cli, ["review", "export", "--db", str(db), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert load_reviewed_labels(out) == {"r-cocaine-nl": ["cocaine"]}
    result = runner.invoke(cli, ["review", "agreement", "--db", str(db), "--out", str(tmp_path / "a.md")])
    assert result.exit_code == 0 and (tmp_path / "a.md").exists()
    tasks = tmp_path / "tasks.json"
    result = runner.invoke(cli, ["review", "labelstudio-export", "--db", str(db), "--out", str(tasks)])
    assert result.exit_code == 0 and len(json.loads(tasks.read_text())) == 33
    result = runner.invoke(cli, ["review", "labelstudio-import", str(tasks), "--db", str(db)])
    assert result.exit_code == 0 and "0 annotation(s) imported" in result.output
    result = runner.invoke(cli, ["review", "--help"])
    for command in ("serve", "export", "agreement", "labelstudio-export", "labelstudio-import", "hf-export"):
        assert command in result.output
    result = runner.invoke(cli, ["review", str(tmp_path / "missing.jsonl"), "--db", str(db)])
    assert result.exit_code == 2 and "no such" in result.output and "missing.jsonl" in result.output
