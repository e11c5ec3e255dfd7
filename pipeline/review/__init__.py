"""Analyst review of a scored batch: a small local web app, an append-only SQLite decision log, exports.

- :mod:`pipeline.review.batch` reads a scored batch (labelled records, contract section 6; JSONL or Parquet).
- :mod:`pipeline.review.highlight` turns evidence spans into escaped highlight markup.
- :mod:`pipeline.review.storage` keeps records and every decision (WAL mode, append-only).
- :mod:`pipeline.review.app` is the Flask app (``narcotag review SCORED``).
- :mod:`pipeline.review.export`, :mod:`pipeline.review.labelstudio`, :mod:`pipeline.review.agreement`:
  ``data/labels/reviewed.jsonl`` (read back by ``prepare``), Label Studio tasks, a Hugging Face dataset,
  Cohen's kappa between blind double reviews.

Nothing here is imported by the pipeline stages; Flask is imported only by :mod:`pipeline.review.app`.
"""
