"""The built-in solvers, as every process that solves (or judges what can be solved) builds them."""

from __future__ import annotations

from cracker.solvers.ocr import OcrSolver
from cracker.solvers.pow import (
    AltchaSolver,
    CapSolver,
    FriendlyCaptchaSolver,
    McaptchaSolver,
    PowEngine,
    PowSha256Solver,
)
from cracker.solvers.registry import SolverRegistry
from cracker.solvers.sandbox import SandboxSolver


def builtin_solvers(pow_engine: PowEngine, ocr: OcrSolver) -> SolverRegistry:
    """Judging what they accept needs neither resource started; solving needs both."""
    return SolverRegistry([
        ocr,
        SandboxSolver(),
        PowSha256Solver(pow_engine),
        AltchaSolver(pow_engine),
        CapSolver(pow_engine),
        McaptchaSolver(pow_engine),
        FriendlyCaptchaSolver(pow_engine),
    ])
