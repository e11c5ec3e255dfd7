"""``narcotag score --engine spark``: the registered model as a Spark UDF over Parquet (scale-out).

The registered pyfunc (``models:/narcotag-tagger@champion``: cleaning + Tagger) runs inside
``mlflow.pyfunc.spark_udf`` on every partition of the input. Input: Parquet in the *generic listing
format* (the model's signature: ``id, kind, market, vendor, title, description, text, category,
ships_from, ships_to, price, currency, posted_at``; missing columns are added as nulls). Output: one Parquet
dataset, partitioned by ``status``::

    OUT/records/status=ok/*.parquet           labelled records (contract section 6 + analytics)
    OUT/records/status=quarantined/*.parquet  rows that could not be tagged, with their ``reason``
    OUT/summary.json                          read = scored + quarantined, model, timing

Why a thin wrapper model: the registered pyfunc answers a quarantined row with ``{"id", "status",
"reason"}`` only, and Spark cannot turn the missing (NaN) nested fields of such rows into structs. The
wrapper (:class:`SparkRecords`, saved next to the output with the registered model inside it) fills every
field with a typed empty value and adds the price analytics, nothing else; records are the model's.

Here Spark runs in ``local[2]``; docs/scoring.md says how to run the same command against a cluster.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from mlflow.pyfunc import PythonModel

from pipeline.config import Paths
from pipeline.score import (
    LABELLED_SCHEMA,
    ScoreParams,
    _write_json,
    check_fields,
    chunk_stats,
    price_analytics,
    resolve_model,
)

#: The Spark output: the labelled-record schema without the free text (the pyfunc does not return the
#: cleaned text), plus the pyfunc's ``status`` and ``reason``.
SPARK_FIELDS: tuple[str, ...] = tuple(
    n for n in LABELLED_SCHEMA.names if n not in ("title", "text", "posted_at")
)
SPARK_ARROW_SCHEMA = pa.schema(
    [pa.field("status", pa.string()), pa.field("reason", pa.string())]
    + [LABELLED_SCHEMA.field(n) for n in SPARK_FIELDS]
)
#: Input columns of the model signature, with their types.
INPUT_COLUMNS: dict[str, str] = {
    **{
        c: "string"
        for c in (
            "id",
            "kind",
            "market",
            "vendor",
            "title",
            "description",
            "text",
            "category",
            "ships_from",
            "ships_to",
            "currency",
            "posted_at",
        )
    },  # fmt: skip
    "price": "double",
}


def spark_type(arrow_type: pa.DataType) -> Any:
    """The pyspark type of a pyarrow type (the subset the labelled-record schema uses)."""
    from pyspark.sql import types as T

    if pa.types.is_string(arrow_type):
        return T.StringType()
    if pa.types.is_float64(arrow_type):
        return T.DoubleType()
    if pa.types.is_int64(arrow_type):
        return T.LongType()
    if pa.types.is_boolean(arrow_type):
        return T.BooleanType()
    if pa.types.is_list(arrow_type):
        return T.ArrayType(spark_type(arrow_type.value_type))
    if pa.types.is_struct(arrow_type):
        return T.StructType(
            [
                T.StructField(f.name, spark_type(f.type))
                for f in (arrow_type.field(i) for i in range(arrow_type.num_fields))
            ]
        )
    raise TypeError(f"no Spark type for {arrow_type}")


def spark_schema() -> Any:
    """The UDF's result type: ``status`` and the whole record as one struct (:data:`SPARK_ARROW_SCHEMA`).

    The record is nested on purpose: MLflow converts a top-level string column holding None into the
    text "None", a nested one into a proper null.
    """
    from pyspark.sql import types as T

    record = T.StructType([T.StructField(f.name, spark_type(f.type)) for f in SPARK_ARROW_SCHEMA])
    return T.StructType([T.StructField("status", T.StringType()), T.StructField("record", record)])


def typed(value: Any, arrow_type: pa.DataType) -> Any:
    """``value`` shaped to ``arrow_type``: every struct key present (missing -> None), lists never null."""
    if pa.types.is_struct(arrow_type):
        value = value if isinstance(value, dict) else {}
        return {
            f.name: typed(value.get(f.name), f.type)
            for f in (arrow_type.field(i) for i in range(arrow_type.num_fields))
        }
    if pa.types.is_list(arrow_type):
        if not isinstance(value, list | tuple):
            return []
        return [typed(v, arrow_type.value_type) for v in value]
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if pa.types.is_floating(arrow_type) and isinstance(value, int | float):
        return float(value)
    return value


class SparkRecords(PythonModel):
    """pyfunc wrapper for Spark: the registered model's records, every field typed, plus analytics."""

    def load_context(self, context: Any) -> None:
        import mlflow

        config = context.model_config or {}
        self.model = mlflow.pyfunc.load_model(
            context.artifacts["tagger"],
            model_config={
                "model_name": config.get("model_name"),
                "model_version": config.get("model_version"),
            },
        )
        self.params = ScoreParams(rates_date=config["rates_date"], usd_rates=dict(config["usd_rates"]))
        self.model_id = {"name": config.get("model_name"), "version": config.get("model_version")}

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        answers = self.model.predict(model_input).to_dict(orient="records")
        prices = model_input["price"].tolist() if "price" in model_input else [None] * len(answers)
        currencies = model_input["currency"].tolist() if "currency" in model_input else [None] * len(answers)
        rows = []
        for answer, price, currency in zip(answers, prices, currencies, strict=True):
            record = {k: v for k, v in answer.items() if k not in ("status", "reason")}
            ok = answer.get("status") == "ok"
            if ok:
                price = None if price is None or price != price else float(price)
                currency = (
                    currency.strip().upper() if isinstance(currency, str) and currency.strip() else None
                )
                record["price"], record["currency"] = price, currency
                record["analytics"] = price_analytics(price, currency, record["quantity"], self.params)
                # the registered model reports its content hash; records carry the registry version
                record["model"] = self.model_id
                check_fields([record])
            row = {f.name: typed(record.get(f.name), f.type) for f in SPARK_ARROW_SCHEMA}
            row["status"] = answer.get("status")
            row["reason"] = None if ok else answer.get("reason")
            rows.append({"status": row["status"], "record": row})
        return pd.DataFrame(rows, columns=["status", "record"])


def build_spark_model(model_uri: str, name: str, version: str, params: ScoreParams, path: Path) -> Path:
    """Save the :class:`SparkRecords` wrapper (with the registered model inside) at ``path``."""
    import mlflow

    from pipeline.export import input_example, pip_requirements, signature

    mlflow.pyfunc.save_model(
        path=str(path),
        python_model=SparkRecords(),
        artifacts={"tagger": model_uri},
        code_paths=[str(Path(__file__).parent)],
        signature=signature(),
        input_example=input_example(),
        pip_requirements=pip_requirements(),
        model_config={
            "model_name": name,
            "model_version": version,
            "rates_date": params.rates_date,
            "usd_rates": dict(params.usd_rates),
        },
    )
    return path


def spark_session(master: str = "local[2]") -> Any:
    """A Spark session; in local mode bound to 127.0.0.1 with the UI off and this Python for workers."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("narcotag-score").master(master)
    builder = builder.config("spark.ui.enabled", "false").config(
        "spark.sql.execution.arrow.pyspark.enabled", "true"
    )
    if master.startswith("local"):
        builder = builder.config("spark.driver.bindAddress", "127.0.0.1").config(
            "spark.driver.host", "127.0.0.1"
        )
    return builder.getOrCreate()


def _is_uri(path: str | Path) -> bool:
    return "://" in str(path)


def score_spark(
    inputs: list[Path] | list[str],
    out: Path | str,
    model: str = "models:/narcotag-tagger@champion",
    params: ScoreParams | None = None,
    master: str = "local[2]",
    report: bool = False,
    paths: Paths | None = None,
    spark: Any = None,
    env_manager: str = "local",
) -> dict[str, Any]:
    """Score Parquet ``inputs`` (generic listing format) with Spark into ``out``; return the summary.

    Inputs and ``out`` may be local paths or filesystem URIs Spark reads (``hdfs://``, ``s3a://``...);
    with local ones the counts come from the Parquet footers, otherwise from Spark. ``model`` is a
    ``models:/`` URI or a local MLflow model folder (a logged pyfunc, not a folder of heads).
    ``env_manager="virtualenv"`` makes executors rebuild the model's pinned environment (a cluster without
    narcotag installed); ``local`` uses the executors' Python as it is.
    """
    import mlflow
    from pyspark.sql import functions as F

    started = time.perf_counter()
    params = params or ScoreParams()
    files = [str(p) if _is_uri(p) else str(Path(p).resolve()) for p in inputs]
    bad = [f for f in files if not (_is_uri(f) or f.endswith((".parquet", ".pq")) or Path(f).is_dir())]
    if bad:
        raise ValueError(f"--engine spark reads Parquet (generic listing format): {bad}; use --engine local")
    if str(model).startswith("models:/"):
        ref = resolve_model(model, paths)
        name, version, uri = ref.name, ref.version, str(ref.location)
    else:  # a saved pyfunc folder
        uri, name, version = str(Path(model).resolve()), "narcotag-tagger", Path(model).name
    local_out = not _is_uri(out)
    records = str(Path(out).resolve() / "records") if local_out else f"{str(out).rstrip('/')}/records"
    own_session = spark is None
    spark = spark or spark_session(master)
    try:
        with tempfile.TemporaryDirectory(prefix="narcotag-spark-") as tmp:
            wrapper = build_spark_model(uri, name, version, params, Path(tmp) / "model")
            udf = mlflow.pyfunc.spark_udf(
                spark, str(wrapper), result_type=spark_schema(), env_manager=env_manager
            )
            frame = spark.read.parquet(*files)
            present = set(frame.columns)
            columns = [
                (F.col(c) if c in present else F.lit(None)).cast(t).alias(c) for c, t in INPUT_COLUMNS.items()
            ]
            frame = frame.select(*columns)
            scored = frame.select(udf(F.struct(*INPUT_COLUMNS)).alias("r")).select("r.record.*")
            scored.write.mode("overwrite").partitionBy("status").parquet(records)
        if local_out and not any(_is_uri(f) for f in files):  # the footers say it: no Spark job needed
            read = parquet_rows(Path(f) for f in files)
            by_status = {
                p.name.removeprefix("status="): parquet_rows([p]) for p in Path(records).glob("status=*")
            }
        else:
            read = spark.read.parquet(*files).count()
            counts = spark.read.parquet(records).groupBy("status").count().collect()
            by_status = {row["status"]: row["count"] for row in counts}
    finally:
        if own_session:
            spark.stop()
    ok, quarantined = by_status.get("ok", 0), by_status.get("quarantined", 0)
    if ok + quarantined != read or set(by_status) - {"ok", "quarantined"}:
        from pipeline.clean import AccountingError

        raise AccountingError(f"spark: {read} read but {by_status} written")
    summary: dict[str, Any] = {
        "read": read,
        "scored": ok,
        "quarantined": quarantined,
        "accounting_ok": True,
        "engine": f"spark ({master})",
        "model": {"uri": str(model), "name": name, "version": version},
        "rates_date": params.rates_date,
        # the UDF tags each record on its own: no first pass estimates a market's class mix (the local
        # engine's prior adaptation, docs/scoring.md); labels equal the local engine's with --prior-sample 0
        "prior_adaptation": "off (the spark engine tags each record on its own)",
        "outputs": {"records": f"{records}/status=ok", "quarantine": f"{records}/status=quarantined"},
        "seconds": round(time.perf_counter() - started, 2),
    }
    if local_out:
        _write_json(Path(out) / "summary.json", summary)
        if report:
            summary["outputs"]["report"] = str(write_spark_report(Path(out), summary, params))
            _write_json(Path(out) / "summary.json", summary)
    return summary


def parquet_rows(paths: Iterable[Path]) -> int:
    """Rows in Parquet files or folders of them, read from the file footers."""
    total = 0
    for path in paths:
        files = [path] if path.is_file() else sorted(path.rglob("*.parquet"))
        total += sum(pq.ParquetFile(f).metadata.num_rows for f in files if not f.name.startswith((".", "_")))
    return total


def write_spark_report(
    out: Path, summary: dict[str, Any], params: ScoreParams, batch_rows: int = 10_000
) -> Path:
    """The batch report of a Spark output: statistics computed batch by batch from the Parquet files."""
    from pipeline.report import write_report

    stats_dir = out / "stats"
    stats_dir.mkdir(parents=True, exist_ok=True)
    chunks: dict[str, Any] = {}
    index = 0
    for status in ("ok", "quarantined"):
        folder = out / "records" / f"status={status}"
        for file in sorted(folder.glob("*.parquet")) if folder.is_dir() else []:
            for batch in pq.ParquetFile(file).iter_batches(batch_size=batch_rows):
                rows = batch.to_pylist()
                records = rows if status == "ok" else []
                quarantine = [{"reason": r["reason"]} for r in rows] if status == "quarantined" else []
                _write_json(
                    stats_dir / f"part-{index:05d}.json",
                    chunk_stats(records, quarantine, params.report_lowest),
                )
                chunks[str(index)] = {"read": len(rows)}
                index += 1
    batch = {"model": summary["model"], "rates": {"date": params.rates_date}, "inputs": []}
    (out / "manifest.json").write_text(json.dumps({"batch": batch, "chunks": chunks}, indent=1) + "\n")
    return write_report(out, out / "report.html", params.report_lowest)
