"""The label contract in code agrees exactly with ../shared/spec/labels.md."""

from __future__ import annotations

import re

import pytest

from pipeline import taxonomy
from tests.conftest import SHARED

SPEC = SHARED / "spec" / "labels.md"


def _table_codes(section_title: str) -> list[str]:
    text = SPEC.read_text(encoding="utf-8")
    section = text.split(section_title, 1)[1].split("\n## ", 1)[0]
    return re.findall(r"^\| `?([a-z_]+)`? \|", section, flags=re.MULTILINE)


@pytest.fixture(autouse=True)
def _need_spec() -> None:
    if not SPEC.exists():
        pytest.skip(f"{SPEC} not found: contract comparison skipped")


def test_drug_types_match_contract() -> None:
    codes = [c for c in _table_codes("## 1. drug_types") if c != "code"]
    assert tuple(codes) == taxonomy.DRUG_TYPES


def test_laundering_hints_match_contract() -> None:
    codes = [c for c in _table_codes("## 4. laundering_hints") if c != "code"]
    assert tuple(codes) == taxonomy.LAUNDERING_HINTS


def test_contact_platforms_match_contract() -> None:
    section = SPEC.read_text(encoding="utf-8").split("## 5. contacts", 1)[1].split("\n## ", 1)[0]
    listed = section.split("platform one of:", 1)[1].split(".", 1)[0]
    assert tuple(p.strip() for p in listed.replace("\n", " ").split(",")) == taxonomy.CONTACT_PLATFORMS


def test_quantity_fields_and_record_fields_match_contract() -> None:
    text = SPEC.read_text(encoding="utf-8")
    for name in taxonomy.QUANTITY_FIELDS:
        assert f"`{name}`" in text
    example = text.split("```", 2)[1]
    for name in taxonomy.LABELLED_FIELDS:
        assert f'"{name}"' in example, name


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        (["non_drug", "cocaine"], ["cocaine"]),
        ([], ["non_drug"]),
        (["non_drug"], ["non_drug"]),
        (["mdma", "cannabis"], ["mdma", "cannabis"]),
    ],
)
def test_non_drug_is_exclusive(codes: list[str], expected: list[str]) -> None:
    assert taxonomy.enforce_non_drug_exclusive(codes) == expected
