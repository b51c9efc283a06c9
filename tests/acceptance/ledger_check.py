"""The books after a fault or a kill: the ledger audit, and the balances against the ledger."""

from __future__ import annotations

from cracker.store import Store, audit, open_store


def audit_is_clean(report: audit.LedgerAudit) -> bool:
    """No hold missing or doubled, no task captured or released twice, none settled out of turn."""
    return (report.bad_holds, report.captured_twice, report.released_twice, report.captured_and_released,
            report.completed_not_captured, report.terminal_not_settled, report.live_but_settled) == (0,) * 7


async def books_of(store: Store) -> tuple[audit.LedgerAudit, bool]:
    """The audit, and whether it is clean and every balance is the sum of its ledger rows."""
    report = await store.read(audit.audit_ledger)
    totals = await store.read(lambda r: r.ledger_totals())
    balances = await store.read(lambda r: r.account_balances())
    return report, audit_is_clean(report) and totals == balances


async def books_at(url: str) -> tuple[audit.LedgerAudit, bool]:
    """``books_of`` the database at ``url``."""
    store = open_store(url)
    try:
        return await books_of(store)
    finally:
        await store.close()
