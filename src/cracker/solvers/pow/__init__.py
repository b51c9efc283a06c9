"""Built-in proof-of-work solvers, all running on one shared ``PowEngine`` process pool."""

from cracker.solvers.pow.altcha import AltchaSolver
from cracker.solvers.pow.cap import CapSolver
from cracker.solvers.pow.engine import Hit, PowEngine
from cracker.solvers.pow.friendly import FriendlyCaptchaSolver
from cracker.solvers.pow.mcaptcha import McaptchaSolver
from cracker.solvers.pow.sha256 import PowSha256Solver

__all__ = [
    "AltchaSolver",
    "CapSolver",
    "FriendlyCaptchaSolver",
    "Hit",
    "McaptchaSolver",
    "PowEngine",
    "PowSha256Solver",
]
