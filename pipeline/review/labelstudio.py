"""Label Studio interop: tasks with the model's predictions out, annotations back in as decisions.

Tasks follow Label Studio's task format: ``{"data": {...}, "predictions": [{"model_version", "score",
"result": [...]}]}`` (optionally ``annotations`` with the reviewed labels). :func:`label_config` writes the
matching labelling interface: ``Text`` ``text``; ``Labels`` ``evidence`` for the evidence spans;
``Choices`` ``drug_types`` and ``laundering_hints`` (multiple); ``Number`` per quantity field; ``TextArea``
``ships_from`` / ``ships_to`` (ISO codes, comma separated). Span offsets are Unicode code points, as Python
and Label Studio (since 1.4) count them.

Import reads a Label Studio JSON export: every annotation that was not cancelled becomes a decision
(``source = "label-studio"``) by reviewer ``labelstudio-<user>`` (or the annotator's e-mail). A control the
annotation does not mention keeps the labels currently in force.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from pipeline.review.highlight import KINDS, record_spans
from pipeline.review.labels import LabelError, clean_labels
from pipeline.review.storage import ReviewError, ReviewStore
from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS, QUANTITY_FIELDS

SOURCE = "label-studio"


def label_config() -> str:
    """The Label Studio labelling config (XML) the exported tasks fit."""
    choice = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in DRUG_TYPES)
    hints = "\n".join(f"    <Choice value={quoteattr(c)}/>" for c in LAUNDERING_HINTS)
    spans = "\n".join(f"    <Label value={quoteattr(k)}/>" for k in KINDS)
    numbers = "\n".join(f'  <Number name="{q}" toName="text" min="0" step="any"/>' for q in QUANTITY_FIELDS)
    return f"""<View>
  <Header value="$title"/>
  <Labels name="evidence" toName="text">
{spans}
  </Labels>
  <Text name="text" value="$text"/>
  <Header value="Drug types"/>
  <Choices name="drug_types" toName="text" choice="multiple" showInline="true">
{choice}
  </Choices>
  <Header value="Quantity of the primary offer"/>
{numbers}
  <Header value="Ships from / to (ISO 3166-1 alpha-2, EU; WW for worldwide)"/>
  <TextArea name="ships_from" toName="text" maxSubmissions="1" editable="true"/>
  <TextArea name="ships_to" toName="text" maxSubmissions="1" editable="true"/>
  <Header value="Laundering hints"/>
  <Choices name="laundering_hints" toName="text" choice="multiple" showInline="true">
{hints}
  </Choices>
</View>
"""


def labels_to_result(labels: dict[str, Any]) -> list[dict[str, Any]]:
    """Decision labels as Label Studio result items (choices, numbers, text areas)."""
    result: list[dict[str, Any]] = [
        {
            "from_name": "drug_types", "to_name": "text", "type": "choices",
            "value": {"choices": labels["drug_types"]},
        },
        {
            "from_name": "laundering_hints", "to_name": "text", "type": "choices",
            "value": {"choices": labels["laundering_hints"]},
        },
    ]  # fmt: skip
    for q in QUANTITY_FIELDS:
        if labels["quantity"].get(q) is not None:
            result.append(
                {
                    "from_name": q,
                    "to_name": "text",
                    "type": "number",
                    "value": {"number": labels["quantity"][q]},
                }
            )
    for head in ("ships_from", "ships_to"):
        result.append(
            {
                "from_name": head,
                "to_name": "text",
                "type": "textarea",
                "value": {"text": [", ".join(labels[head])]},
            }
        )
    return result


def span_results(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The record's evidence spans as Label Studio ``labels`` results (offsets as in ``text``)."""
    text = record.get("text") or ""
    out = []
    for entry in record_spans(record):
        item = entry["item"]
        start, end = item.get("start"), item.get("end")
        if not (isinstance(start, int) and isinstance(end, int) and 0 <= start < end <= len(text)):
            continue
        out.append(
            {
                "from_name": "evidence", "to_name": "text", "type": "labels",
                "value": {"start": start, "end": end, "text": text[start:end], "labels": [entry["kind"]]},
            }
        )  # fmt: skip
    return out


def export_tasks(
    store: ReviewStore, out: Path, batch: str | None = None, annotations: bool = False
) -> dict[str, int]:
    """Write the records (of ``batch``, or all) as Label Studio tasks with predictions to ``out`` (JSON),
    and the labelling config beside it (``<out stem>.label_config.xml``). With ``annotations`` the decision
    in force (round 1) goes along as an annotation."""
    from pipeline.review.labels import predicted_labels

    reviewed = {d["rid"]: d for d in store.current_decisions(rnd=1)} if annotations else {}
    tasks = []
    for record in store.records(batch):
        labels = predicted_labels(record)
        result = labels_to_result(labels) + span_results(record)
        for i, item in enumerate(result):
            item["id"] = f"p{i}"
        task: dict[str, Any] = {
            "data": {
                "record_id": record["id"],
                "title": record.get("title") or "",
                "text": record.get("text") or "",
                "market": record.get("market"),
                "kind": record.get("kind"),
                "lang": record.get("lang"),
                "confidence": record.get("confidence"),
            },
            "predictions": [
                {
                    "model_version": record["model"].get("version") or "unversioned",
                    "score": record.get("confidence"),
                    "result": result,
                }
            ],
        }
        decision = reviewed.get(record["id"])
        if decision is not None:
            task["annotations"] = [
                {"result": labels_to_result(decision["after"]), "completed_by": decision["reviewer"]}
            ]
        tasks.append(task)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(tasks, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    config = out.with_name(out.stem + ".label_config.xml")
    config.write_text(label_config(), encoding="utf-8")
    return {"tasks": len(tasks), "with_annotations": sum("annotations" in t for t in tasks)}


def result_to_labels(result: list[dict[str, Any]], base: dict[str, Any]) -> dict[str, Any]:
    """Labels from Label Studio result items; controls the result does not mention keep ``base``."""
    labels = json.loads(json.dumps(base))
    seen_choices: set[str] = set()
    for item in result:
        name, value = item.get("from_name"), item.get("value") or {}
        if name in ("drug_types", "laundering_hints"):
            codes = list(value.get("choices") or [])
            labels[name] = codes if name not in seen_choices else labels[name] + codes
            seen_choices.add(name)
        elif name in QUANTITY_FIELDS:
            labels["quantity"][name] = value.get("number")
        elif name in ("ships_from", "ships_to"):
            texts = value.get("text") or []
            labels[name] = ",".join(texts if isinstance(texts, list) else [str(texts)])
    return labels


def _annotator(annotation: dict[str, Any]) -> str:
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    text = str(who) if who not in (None, "") else "unknown"
    return text if "@" in text else f"labelstudio-{text}"


def import_tasks(store: ReviewStore, path: Path) -> dict[str, Any]:
    """Append every non-cancelled annotation of a Label Studio JSON export as a decision.

    Tasks are matched on ``data.record_id`` (as exported); unknown records and annotations that break the
    contract are skipped and counted, with the first few reasons."""
    tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    if isinstance(tasks, dict):
        tasks = [tasks]
    imported, skipped = 0, 0
    reasons: list[str] = []
    for task in tasks:
        rid = str((task.get("data") or {}).get("record_id") or "")
        annotations = sorted(
            (a for a in task.get("annotations") or [] if not a.get("was_cancelled")),
            key=lambda a: str(a.get("updated_at") or a.get("created_at") or ""),
        )
        for annotation in annotations:
            try:
                reviewer = _annotator(annotation)
                base = store.state(rid, reviewer).labels
                labels = clean_labels(result_to_labels(annotation.get("result") or [], base))
                store.decide(rid, reviewer, labels, source=SOURCE)
                imported += 1
            except (ReviewError, LabelError) as e:
                skipped += 1
                if len(reasons) < 5:
                    reasons.append(f"{rid or '?'}: {e}")
    return {"imported": imported, "skipped": skipped, "reasons": reasons}
