"""Exact and near-duplicate grouping of records (MinHash LSH, never all pairs).

Every record keeps its row; duplicates share a ``dup_group`` (the id of the group's representative, the
first record in input order), and only the representative is marked for training. Splits keep a whole
group on one side, so a listing copied across snapshots or vendors cannot leak from train into test.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

from datasketch import MinHash, MinHashLSH

_NON_WORD = re.compile(r"[\W_]+", re.UNICODE)
_NUMBER = re.compile(r"\d+(?:[.,]\d+)?")


@dataclass(frozen=True)
class NearDupParams:
    """MinHash LSH settings: ``threshold`` is the estimated Jaccard similarity of character shingles."""

    enabled: bool = True
    threshold: float = 0.85
    num_perm: int = 64
    shingle_size: int = 5


def dedup_key(text: str) -> str:
    """Key of exact duplicates: case, punctuation and spacing do not make a listing new."""
    return _NON_WORD.sub(" ", text.lower()).strip()


_SHINGLE_CHARS = 2000  # a page-long text is judged by its start: shingling all of it costs, and adds little


def _shingles(key: str, size: int) -> list[bytes]:
    key = key[:_SHINGLE_CHARS]
    if len(key) <= size:
        return [key.encode()]
    return [key[i : i + size].encode() for i in range(len(key) - size + 1)]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:  # the smaller index (earlier in input) stays the root: the representative
            self.parent[max(ra, rb)] = min(ra, rb)


def group_duplicates(
    ids: Sequence[str], texts: Sequence[str], params: NearDupParams
) -> tuple[list[str], list[bool]]:
    """Return ``(dup_group, is_representative)`` per record.

    Exact duplicates (same :func:`dedup_key`) are grouped by hashing; near-duplicates among the distinct
    keys by MinHash LSH on character shingles. Two near-duplicate texts are merged only when they state the
    same numbers, so "Cocaine 1g" and "Cocaine 5g" stay distinct offers.
    """
    keys = [dedup_key(t) for t in texts]
    first_of_key: dict[str, int] = {}
    distinct: list[int] = []  # index of the first record of each distinct key
    for i, key in enumerate(keys):
        if key not in first_of_key:
            first_of_key[key] = i
            distinct.append(i)
    uf = _UnionFind(len(texts))
    for i, key in enumerate(keys):
        uf.union(first_of_key[key], i)

    if params.enabled and len(distinct) > 1:
        minhashes = MinHash.bulk(
            [_shingles(keys[i], params.shingle_size) for i in distinct], num_perm=params.num_perm
        )
        lsh = MinHashLSH(threshold=params.threshold, num_perm=params.num_perm)
        numbers = {i: tuple(_NUMBER.findall(keys[i])) for i in distinct}
        for i, mh in zip(distinct, minhashes, strict=True):
            for j in lsh.query(mh):
                if numbers[j] == numbers[i]:
                    uf.union(i, j)
            lsh.insert(i, mh, check_duplication=False)

    roots = [uf.find(i) for i in range(len(texts))]
    groups = [_group_id(ids[r]) for r in roots]
    representative = [r == i for i, r in enumerate(roots)]
    return groups, representative


def _group_id(representative_id: str) -> str:
    return "g" + hashlib.blake2b(representative_id.encode(), digest_size=8).hexdigest()
