"""The MLflow pyfunc model, logged as *models from code* by the export stage.

Input: a DataFrame in the generic listing format (``id, kind, market, vendor, title, description, text,
ships_from, ships_to, price, currency, posted_at``; all optional except one of title/description/text).
The same cleaning as training runs first, then the Tagger. Output: one labelled record per input row
(contract section 6); a row that cannot be tagged (no text, a 10 MB field) comes back with
``status: "quarantined"`` and its ``reason`` instead of labels, so rows and answers always line up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.pyfunc import PythonModel


class NarcotagModel(PythonModel):
    """pyfunc wrapper around :class:`pipeline.tagger.Tagger`."""

    def load_context(self, context: Any) -> None:
        from pipeline.tagger import Tagger

        meta = context.model_config or {}
        self.tagger = Tagger.load(
            Path(context.artifacts["models"]),
            model_name=meta.get("model_name", "narcotag-tagger"),
            model_version=meta.get("model_version"),
        )

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        from pipeline.clean import clean_frame

        frame = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        records, rejected = clean_frame(frame, source=(params or {}).get("source", "api"))
        tagged = {r["id"]: r for r in self.tagger.tag(records)}
        out = []
        for position, record_id in enumerate(records_ids(frame, records, rejected)):
            if position in rejected:
                out.append({"id": record_id, "status": "quarantined", "reason": rejected[position]})
            else:
                out.append({**tagged[record_id], "status": "ok"})
        frame_out = pd.DataFrame(out)
        # a quarantined row has no labels: None (JSON null), not pandas' NaN, in those columns
        return frame_out.astype(object).where(frame_out.notna(), None)


def records_ids(frame: pd.DataFrame, records: pd.DataFrame, rejected: dict[int, str]) -> list[str]:
    """The output id of every input row, in input order (cleaned ids for kept rows)."""
    kept = iter(records["id"].tolist())
    ids = []
    for position in range(len(frame)):
        if position in rejected:
            given = frame["id"].iloc[position] if "id" in frame else None
            ids.append(str(given) if given is not None and given == given else f"row:{position}")
        else:
            ids.append(next(kept))
    return ids


mlflow.models.set_model(NarcotagModel())
