"""CharWbCounter: the vectorised character n-gram counts equal scikit-learn's char_wb vectorizer exactly."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction.text import TfidfVectorizer

from pipeline.heads import char_ngrams
from pipeline.heads.char_ngrams import CharWbCounter, supports

GOLD = Path(__file__).resolve().parents[1] / "data" / "gold"

TRICKY = [
    "",
    "   ",
    "a",
    "ab",
    "x\ty\n\nz  \r\n w",
    "Amnesia Haze 10g TOP shelf",
    "İstanbul ẞ Ǆ ﬁ",  # lower() changes the length of some characters
    "non\u00a0breaking\u2003em\u2028line\x1cfile",  # Unicode whitespace, regex and str.split alike
    "\ud800 lone surrogate \udfff",
    "🇩🇪 🍁🍁 emoji-only ☃",
    "кокаин 1г лучший",
    "a" * 40 + " " + "b" * 7,
    "2C-B 25mg x10 (pink) [EU]",
]


def _gold_texts() -> list[str]:
    texts = []
    for path in sorted(GOLD.glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            texts.append(str(json.loads(line).get("text") or ""))
    return texts


def _fitted(ngram_range: tuple[int, int], max_features: int | None, texts: list[str]) -> TfidfVectorizer:
    vectorizer = TfidfVectorizer(
        analyzer="char_wb", ngram_range=ngram_range, max_features=max_features, sublinear_tf=True,
        dtype=np.float32,
    )  # fmt: skip
    return vectorizer.fit(texts)


@pytest.mark.parametrize(
    ("ngram_range", "max_features"),
    [((2, 5), 3000), ((2, 5), None), ((3, 3), None), ((2, 6), 500), ((3, 4), 50)],
)
def test_counts_and_features_equal_scikit_learn(
    ngram_range: tuple[int, int], max_features: int | None
) -> None:
    texts = _gold_texts() + TRICKY
    fit_on = texts[::2] + TRICKY  # half unseen: out-of-vocabulary n-grams dropped
    vectorizer = _fitted(ngram_range, max_features, fit_on)
    counter = CharWbCounter(vectorizer)
    expected = vectorizer.transform(texts)
    got = counter.transform(texts)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    assert np.array_equal(got.indptr, expected.indptr) and np.array_equal(got.indices, expected.indices)
    assert np.array_equal(got.data, expected.data)  # bit-for-bit, not approximately
    raw = counter.counts(texts)
    assert raw.sum() > 0 and np.all(raw.data >= 1)


def test_blocks_give_the_same_matrix(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = _gold_texts() + TRICKY
    vectorizer = _fitted((2, 5), None, texts)
    whole = CharWbCounter(vectorizer).transform(texts)
    monkeypatch.setattr(char_ngrams, "BLOCK_CHARS", 500)  # dozens of blocks
    blocked = CharWbCounter(vectorizer).transform(texts)
    assert (whole != blocked).nnz == 0 and np.array_equal(whole.indices, blocked.indices)


def test_empty_inputs() -> None:
    vectorizer = _fitted((2, 5), None, TRICKY)
    counter = CharWbCounter(vectorizer)
    assert counter.transform([]).shape == (0, len(vectorizer.vocabulary_))
    only_blank = counter.transform(["", "  ", "\n"])
    assert only_blank.shape == (3, len(vectorizer.vocabulary_)) and only_blank.nnz == 0


@pytest.mark.parametrize(
    "options",
    [
        {"analyzer": "word"},
        {"analyzer": "char"},
        {"analyzer": "char_wb", "ngram_range": (1, 3)},
        {"analyzer": "char_wb", "ngram_range": (4, 5)},
        {"analyzer": "char_wb", "ngram_range": (2, 7)},
        {"analyzer": "char_wb", "strip_accents": "unicode"},
        {"analyzer": "char_wb", "lowercase": False},
    ],
)
def test_unsupported_vectorizers_are_refused(options: dict[str, object]) -> None:
    vectorizer = TfidfVectorizer(**options).fit(TRICKY[5:])  # type: ignore[arg-type]
    assert not supports(vectorizer)
    with pytest.raises(ValueError, match="char_wb"):
        CharWbCounter(vectorizer)


def test_unfitted_is_refused() -> None:
    assert not supports(TfidfVectorizer(analyzer="char_wb"))
