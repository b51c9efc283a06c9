"""Reports of a task's answer, right or wrong: who may report, what is refunded, what is kept.

A client reports a completed task of its own, once, within the operator's window. An incorrect
report refunds the task's cost while the account's refunds of that task type over the recent
period stay within a share of its completed tasks of that type then, so that reporting every
answer wrong cannot farm the service. Image answers reported with the right text (or confirmed
right) are kept as labelled images for the model that read them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple

#: The model an image-to-text task names when it names none.
GENERAL_MODEL = "general"
#: The longest expected text accepted (image-to-text answers are at most 32 characters).
MAX_EXPECTED_CHARS = 64
#: Task types whose answer is an image's text: a report of them keeps the image as a label.
IMAGE_TYPES = frozenset({"image-to-text"})


class RefundRefused(StrEnum):
    """Why an incorrect report was recorded without a refund."""

    #: The account's refunds of this task type already reach its share of recent tasks.
    SHARE_EXCEEDED = "share_exceeded"
    #: The task cost nothing.
    NO_COST = "no_cost"


@dataclass(frozen=True, slots=True)
class RefundPolicy:
    """The operator's limits on reports (``CRACKER_REPORT_*``)."""

    #: A task may be reported this long after it completed.
    window_s: float
    #: Refunds of a type may reach this share of the account's completed tasks of that type ...
    share: float
    #: ... created over this many seconds before the report.
    period_s: float

    def refund_allowed(self, completed: int, refunded: int) -> bool:
        """May one more refund be given, with ``refunded`` given already over the period out of
        ``completed`` tasks? Exactly ``floor(share x completed)`` refunds per period, never more:
        decimal arithmetic, since ``0.29 * 100`` is 28.999... in binary floating point."""
        allowance = math.floor(Decimal(str(self.share)) * completed)
        return refunded + 1 <= allowance


@dataclass(frozen=True, slots=True)
class ReportOutcome:
    """What a report did: the protocol adapters (v2, and the vendors' report methods) answer from it."""

    task_id: str
    task_type: str
    correct: bool
    #: Units refunded; 0 when not refunded.
    refund: int
    #: Why an incorrect report was not refunded; None when refunded or when reported correct.
    refund_refused: RefundRefused | None
    #: The report keeps the task's image with its right text, for fine-tuning the model.
    labelled: bool
    #: The account's available balance after the report (units).
    balance: int
    created_at: float

    @property
    def refunded(self) -> bool:
        return self.refund > 0

    @property
    def outcome(self) -> str:
        """The metrics' label: correct, refunded, or why an incorrect report was not refunded."""
        if self.correct:
            return "correct"
        return "refunded" if self.refunded else str(self.refund_refused or "not_refunded")


class ReportedLabel(NamedTuple):
    """A labelled image from reports: what a model should have read in ``image`` (unpacks as
    ``image, text``)."""

    image: bytes
    text: str
