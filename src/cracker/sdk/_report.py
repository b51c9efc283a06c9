"""A report's answer as the SDK returns it: a dict (``report["refund"]``) with typed accessors."""

from __future__ import annotations

from typing import Any


class Report(dict[str, Any]):
    """What ``POST /v2/tasks/{task_id}/report`` did. Item access gives the JSON; properties add types."""

    @property
    def task_id(self) -> str:
        return str(self["task_id"])

    @property
    def correct(self) -> bool:
        return bool(self["correct"])

    @property
    def refunded(self) -> bool:
        return bool(self["refunded"])

    @property
    def refund(self) -> str:
        """USD refunded, 4 decimals (``"0.0000"`` when not refunded)."""
        return str(self["refund"])

    @property
    def refund_refused(self) -> str | None:
        """Why an incorrect report was not refunded (``share_exceeded``, ``no_cost``); None otherwise."""
        reason = self.get("refund_refused")
        return None if reason is None else str(reason)

    @property
    def labelled(self) -> bool:
        return bool(self["labelled"])

    @property
    def balance(self) -> str:
        """The account's balance after the report, USD."""
        return str(self["balance"])
