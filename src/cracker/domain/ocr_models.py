"""Named OCR models: fine-tuned copies of the general model that ``image-to-text`` tasks may ask for.

Models are global: an operator registers them (``cracker ocr-models add``) and every account may
name one in a task, as every account may use the general model. A model holds no account's data
(only its weights); what one account can do with one is what it can do with the general model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: The shipped model every task uses unless it names another; no registered model may take its name.
GENERAL_MODEL = "general"
#: A model's name: what tasks send in ``model`` (lowercase, so names never differ only by case).
NAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,63}$"
_NAME = re.compile(NAME_PATTERN)


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a registered model's name, or None when it can."""
    if not _NAME.match(name):
        return "a model name is 1 to 64 of a-z, 0-9, '.', '_' and '-', starting with a letter or digit"
    if name == GENERAL_MODEL:
        return f"{GENERAL_MODEL!r} is the shipped model's name"
    return None


@dataclass(frozen=True, slots=True)
class OcrModelSummary:
    """What ``list`` shows (no weights)."""

    name: str
    #: Sequence accuracy on the held-out part of its labelled images, and of the model it started from.
    score: float
    base_score: float
    held_out: int
    trained_on: int
    #: Bytes of the ONNX model.
    size: int
    created_at: float
    #: The model it was fine-tuned from.
    base: str


@dataclass(frozen=True, slots=True)
class OcrModelRecord:
    summary: OcrModelSummary
    onnx: bytes
    #: ``model.json``: the alphabet and input size the solver needs, and how it was trained.
    metadata: dict[str, object] = field(default_factory=dict)
    #: Its torch weights, so a later fine-tune can start from it (None: not kept).
    checkpoint: bytes | None = None

    @property
    def version(self) -> str:
        """Changes whenever the model under this name is replaced (removed and added again)."""
        return f"{self.summary.name}@{self.summary.created_at!r}"
