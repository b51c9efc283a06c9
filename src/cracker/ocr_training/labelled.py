"""Folders of labelled captcha images: the format fine-tuning and evaluation read."""

from __future__ import annotations

import csv
from pathlib import Path

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}


def read_folder(folder: Path) -> list[tuple[Path, str]]:
    """(image path, label) pairs.

    Labels come from ``labels.tsv`` (``file<TAB>label`` per line) when the folder has one, else from
    each file's name: the part before the first ``_`` (``aB3x_17.png`` is labelled ``aB3x``), so
    two images of the same text can coexist.
    """
    index = folder / "labels.tsv"
    if index.exists():
        with index.open(newline="", encoding="utf-8") as handle:
            rows = [row for row in csv.reader(handle, delimiter="\t") if len(row) >= 2]
        return [(folder / name, label) for name, label, *_ in rows]
    return [
        (path, path.stem.split("_", 1)[0])
        for path in sorted(folder.iterdir())
        if path.suffix.lower() in IMAGE_SUFFIXES
    ]
