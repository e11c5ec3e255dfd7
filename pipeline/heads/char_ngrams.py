"""Vectorised counting of character n-grams for a fitted ``char_wb`` vectorizer (same matrix, less CPU).

scikit-learn's ``char_wb`` analyzer builds every n-gram of every word as a Python string and looks each one up
in the vocabulary dict: about 40 % of the drug_type head's scoring time. :class:`CharWbCounter` computes the
same count matrix with numpy: the chunk's words, padded with a space on each side as scikit-learn pads them,
become one array of code points; every n-gram is packed *exactly* into integers (21 bits per code point, so
no hashing and no collision) and found in sorted tables of the vocabulary's n-grams. The counts then go
through the vectorizer's own fitted TF-IDF step, so the features are bit-for-bit those of
``vectorizer.transform`` (tests compare both on every gold and sample text).

Supported: ``analyzer="char_wb"``, lower-casing, no accent stripping or custom preprocessor,
``2 <= min_n <= 3`` and ``max_n <= 6`` (a padded word has at least 3 characters, so with ``min_n <= 3``
scikit-learn's short-word rule never fires). Anything else falls back to ``vectorizer.transform``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer

_BITS = 21  # every Unicode code point (<= 0x10FFFF) fits in 21 bits; three fit in one int64
_PART = 3  # code points packed into one int64 key
BLOCK_CHARS = 1_000_000  # characters counted at once (bounds the temporary arrays to ~50 MB)


def supports(vectorizer: Any) -> bool:
    """Whether :class:`CharWbCounter` reproduces ``vectorizer`` exactly (else use its own transform)."""
    if not isinstance(vectorizer, TfidfVectorizer) or not hasattr(vectorizer, "vocabulary_"):
        return False
    min_n, max_n = vectorizer.ngram_range
    return (
        vectorizer.analyzer == "char_wb"
        and vectorizer.lowercase
        and vectorizer.preprocessor is None
        and vectorizer.strip_accents is None
        and vectorizer.input == "content"
        and 2 <= min_n <= 3
        and min_n <= max_n <= 2 * _PART
        and hasattr(vectorizer, "_tfidf")
    )


def _code_points(text: str) -> np.ndarray:
    # surrogatepass: a lone surrogate is one code point to Python too, so positions stay aligned
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32).astype(np.int64)


def _pack(points: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
    """The ``width`` (<= 3) code points from each start packed into one int64 (exact)."""
    key = np.zeros(len(starts), dtype=np.int64)
    for k in range(width):
        key = (key << _BITS) | points[starts + k]
    return key


class _SortedKeys:
    """A sorted int64 key table with the value of each key: vectorised exact lookup."""

    def __init__(self, keys: np.ndarray, values: np.ndarray) -> None:
        order = np.argsort(keys, kind="stable")
        self.keys, self.values = keys[order], values[order]

    def find(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(found, values)``: a mask over ``queries`` and the values of the found ones."""
        if not len(self.keys):
            return np.zeros(len(queries), dtype=bool), np.zeros(0, dtype=np.int64)
        at = np.minimum(np.searchsorted(self.keys, queries), len(self.keys) - 1)
        found = self.keys[at] == queries
        return found, self.values[at[found]]


class _LengthTable:
    """The vocabulary's n-grams of one length n, as packed keys. Up to 3 code points: one key. Longer: the
    first 3 and the rest are each replaced by their rank among the vocabulary's values, and the pair of ranks
    is the key (exact: a pair of ranks names one n-gram)."""

    def __init__(self, n: int, terms: list[str], columns: np.ndarray) -> None:
        self.n = n
        points = _code_points("".join(terms)).reshape(len(terms), n) if terms else np.zeros((0, n), np.int64)
        starts = np.arange(len(terms), dtype=np.int64) * n
        flat = points.reshape(-1)
        if n <= _PART:
            self.head = _SortedKeys(_pack(flat, starts, n), columns)
            return
        head, tail = _pack(flat, starts, _PART), _pack(flat, starts + _PART, n - _PART)
        head_values, tail_values = np.unique(head), np.unique(tail)
        self.head = _SortedKeys(head_values, np.arange(len(head_values), dtype=np.int64))
        self.tail = _SortedKeys(tail_values, np.arange(len(tail_values), dtype=np.int64))
        pairs = (np.searchsorted(head_values, head) << 32) | np.searchsorted(tail_values, tail)
        self.pairs = _SortedKeys(pairs, columns)

    def columns(self, points: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For the n-grams starting at ``starts``: which are in the vocabulary, and their columns."""
        if self.n <= _PART:
            return self.head.find(_pack(points, starts, self.n))
        in_head, head_rank = self.head.find(_pack(points, starts, _PART))
        starts = starts[in_head]
        in_tail, tail_rank = self.tail.find(_pack(points, starts + _PART, self.n - _PART))
        in_vocab, columns = self.pairs.find((head_rank[in_tail] << 32) | tail_rank)
        found = np.zeros(len(in_head), dtype=bool)
        candidates = np.flatnonzero(in_head)[in_tail]
        found[candidates[in_vocab]] = True
        return found, columns


class CharWbCounter:
    """Exact, vectorised ``transform`` for a fitted ``char_wb`` :class:`TfidfVectorizer` (check
    :func:`supports` first)."""

    def __init__(self, vectorizer: TfidfVectorizer) -> None:
        if not supports(vectorizer):
            raise ValueError("CharWbCounter needs a fitted char_wb TfidfVectorizer it can reproduce")
        self.vectorizer = vectorizer
        self.min_n, self.max_n = vectorizer.ngram_range
        vocabulary: dict[str, int] = vectorizer.vocabulary_
        self.width = len(vocabulary)
        by_length: dict[int, list[str]] = {n: [] for n in range(self.min_n, self.max_n + 1)}
        for term in vocabulary:
            if len(term) in by_length:
                by_length[len(term)].append(term)
        self.tables = {
            n: _LengthTable(n, terms, np.array([vocabulary[t] for t in terms], dtype=np.int64))
            for n, terms in by_length.items()
        }

    def counts(self, documents: list[str]) -> sp.csr_matrix:
        """The raw n-gram count matrix (what ``CountVectorizer.transform`` returns), float32, sorted indices.
        Documents go in blocks of about :data:`BLOCK_CHARS` characters: the arrays per block are ~50 bytes
        per character, so memory stays bounded whatever the texts' length."""
        blocks, start, size = [], 0, 0
        for end, document in enumerate(documents, 1):
            size += len(document)
            if size >= BLOCK_CHARS:
                blocks.append(self._block(documents[start:end]))
                start, size = end, 0
        if start < len(documents) or not blocks:
            blocks.append(self._block(documents[start:]))
        return blocks[0] if len(blocks) == 1 else sp.vstack(blocks, format="csr")

    def _block(self, documents: list[str]) -> sp.csr_matrix:
        whitespace = self.vectorizer._white_spaces
        words: list[str] = []
        words_per_document = np.zeros(len(documents), dtype=np.int64)
        for i, document in enumerate(documents):
            split = whitespace.sub(" ", document.lower()).split()
            words.extend(split)
            words_per_document[i] = len(split)
        shape = (len(documents), self.width)
        if not words:
            return sp.csr_matrix(shape, dtype=np.float32)
        # " w1  w2  w3 ": each word padded with a space on both sides, as scikit-learn does
        points = _code_points(" " + "  ".join(words) + " ")
        padded = np.fromiter(map(len, words), dtype=np.int64, count=len(words)) + 2
        word_end = np.cumsum(padded)
        end_of_position = np.repeat(word_end, padded)
        document_of_position = np.repeat(np.repeat(np.arange(len(documents)), words_per_document), padded)
        points = np.concatenate([points, np.zeros(self.max_n, dtype=np.int64)])  # reads past the end: padding
        positions = np.arange(len(end_of_position), dtype=np.int64)
        rows, cols = [], []
        for n, table in self.tables.items():
            # an n-gram starts at every position whose word still has n characters from there
            starts = np.flatnonzero(positions + n <= end_of_position)
            found, columns = table.columns(points, starts)
            rows.append(document_of_position[starts[found]])
            cols.append(columns)
        row, col = np.concatenate(rows), np.concatenate(cols)
        ones = np.ones(len(row), dtype=np.intc)
        matrix = sp.csr_matrix((ones, (row, col)), shape=shape)  # duplicates summed, indices sorted
        matrix.sum_duplicates()
        index = np.int32 if matrix.nnz < np.iinfo(np.int32).max else np.int64  # as scikit-learn chooses
        return sp.csr_matrix(
            (matrix.data.astype(np.float32), matrix.indices.astype(index), matrix.indptr.astype(index)),
            shape=shape,
        )

    def transform(self, documents: list[str]) -> sp.csr_matrix:
        """TF-IDF features, equal to ``vectorizer.transform(documents)`` (and an empty matrix for no
        documents, where scikit-learn raises)."""
        if not documents:
            return sp.csr_matrix((0, self.width), dtype=np.float32)
        return self.vectorizer._tfidf.transform(self.counts(documents), copy=False)
