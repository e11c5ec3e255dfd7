"""Rich progress bars with rate, shown only on an interactive terminal (quiet in DVC logs and CI)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

T = TypeVar("T")


class _RateColumn(TextColumn):
    def __init__(self) -> None:
        super().__init__("")

    def render(self, task):  # type: ignore[no-untyped-def]
        speed = task.finished_speed or task.speed
        return super().render(task) if speed is None else f"{speed:,.0f}/s"


def make_progress() -> Progress:
    """A progress display with count, rate and ETA; disabled when stderr is not a terminal."""
    return Progress(
        SpinnerColumn(),
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not sys.stderr.isatty(),
        transient=False,
    )


def progress_bar(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` while showing a progress bar with rate (and ETA when ``total`` is known)."""
    with make_progress() as progress:
        task = progress.add_task(description, total=total)
        pending = 0
        for item in items:
            yield item
            pending += 1
            if pending == 1000:  # advancing per item costs more than cleaning a short title
                progress.advance(task, pending)
                pending = 0
        progress.advance(task, pending)
