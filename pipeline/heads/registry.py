"""The heads narcotag trains and ships, by name (= folder under models/ = DVC foreach item)."""

from __future__ import annotations

import importlib
from typing import Any

#: head name -> "module:Class"; order is the order of the output columns
HEADS: dict[str, str] = {
    "drug_type": "pipeline.heads.drug_type:DrugTypeHead",
    "quantity": "pipeline.heads.quantity:QuantityHead",
    "origin": "pipeline.heads.origin:OriginHead",
    "laundering": "pipeline.heads.laundering:LaunderingHead",
    "contacts": "pipeline.heads.contacts:ContactsHead",
}


#: heads a Tagger uses when their folder exists (messenger ads: offer or not)
OPTIONAL_HEADS: dict[str, str] = {
    "ad_detector": "pipeline.heads.ad_detector:AdDetectorHead",
}


def head_class(name: str) -> Any:
    """The class of head ``name`` (imported on first use)."""
    known = {**HEADS, **OPTIONAL_HEADS}
    if name not in known:
        raise KeyError(f"unknown head {name!r}; known: {sorted(known)}")
    module, _, cls = known[name].partition(":")
    return getattr(importlib.import_module(module), cls)
