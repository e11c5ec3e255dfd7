"""The narcotag command line (typer's CliRunner): exit codes and what it prints and writes."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipeline.cli import app, dvc_command
from tests.conftest import REPO

runner = CliRunner()


def test_help_lists_commands() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("sample", "clean", "train", "evaluate", "score", "summary"):
        assert command in result.output


def test_sample_command_writes_sample(tmp_path: Path) -> None:
    result = runner.invoke(app, ["sample", "--out", str(tmp_path), "--params", str(REPO / "params.yaml")])
    assert result.exit_code == 0, result.output
    raw = tmp_path / "data" / "raw" / "sample"
    assert (raw / "truth.jsonl").exists() and (raw / "manifest.json").exists()


def test_clean_paths_to_a_table(tmp_path: Path) -> None:
    listings = tmp_path / "listings.jsonl"
    listings.write_text(
        "\n".join(
            [
                json.dumps({"id": "L1", "title": "Ketamine needles 5g", "ships_from": "Netherlands"}),
                json.dumps({"id": "L2", "title": "CafÃ© crÃ¨me <b>MDMA</b> 1g"}),
                '{"id": "L3", "title": "truncated',
                json.dumps({"id": "L4", "title": ""}),
            ]
        )
        + "\n"
    )
    out = tmp_path / "out" / "records.parquet"
    result = runner.invoke(
        app, ["clean", str(listings), "--out", str(out), "--params", str(REPO / "params.yaml")]
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(out)
    assert list(frame["id"]) == ["L1", "L2"]
    assert frame.loc[1, "text"] == "Café crème MDMA 1g"
    quarantine = [
        json.loads(x) for x in (tmp_path / "out" / "records.quarantine.jsonl").read_text().splitlines()
    ]
    assert sorted(q["reason"] for q in quarantine) == ["invalid_json", "no_text"]
    assert "4 read = 2 kept + 2 quarantined" in " ".join(result.output.split())


def test_clean_paths_needs_out(tmp_path: Path) -> None:
    result = runner.invoke(app, ["clean", str(tmp_path), "--params", str(REPO / "params.yaml")])
    assert result.exit_code != 0
    assert "--out" in result.output


def test_unknown_param_key_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "params.yaml"
    bad.write_text("clean:\n  near_dupe: {}\n")
    result = runner.invoke(app, ["clean", "--params", str(bad)])
    assert result.exit_code != 0
    assert "near_dupe" in str(result.exception)


@pytest.mark.parametrize(
    ("overrides", "name", "expected_tail"),
    [
        ([], None, ["repro"]),
        (["train.drug_type.C=4"], None, ["exp", "run", "--temp", "-S", "train.drug_type.C=4"]),
        (
            ["data.source=shared"],
            "real",
            ["exp", "run", "--temp", "--name", "real", "-S", "data.source=shared"],
        ),
    ],
)
def test_train_builds_the_dvc_command(
    overrides: list[str], name: str | None, expected_tail: list[str]
) -> None:
    cmd = dvc_command(overrides, name)
    assert Path(cmd[0]).name == "dvc"
    assert cmd[1:] == expected_tail
