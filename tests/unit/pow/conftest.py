"""Fixtures of the proof-of-work tests: one engine per path (C fast path when built, pure Python)."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from pydantic import BaseModel

from cracker.solvers.base import SolveJob
from cracker.solvers.pow import PowEngine
from cracker.solvers.pow.kernels import native_available


@pytest.fixture(scope="session")
async def native_engine() -> AsyncIterator[PowEngine]:
    async with PowEngine(workers=2) as engine:
        yield engine


@pytest.fixture(scope="session")
async def python_engine() -> AsyncIterator[PowEngine]:
    async with PowEngine(workers=2, native=False) as engine:
        assert not engine.native
        yield engine


@pytest.fixture(params=["native", "python"])
def engine(request: pytest.FixtureRequest) -> PowEngine:
    """Both paths for the SHA-256 families: the C fast path (when built) and the fallback."""
    if request.param == "native" and not native_available():
        pytest.skip("the C fast path is not built")
    engine: PowEngine = request.getfixturevalue(f"{request.param}_engine")
    return engine


def make_job(task_type: str, model: type[BaseModel], params: Mapping[str, Any], timeout: float = 30.0) -> SolveJob:
    """A job exactly as the service builds it: the validated model, dumped as JSON."""
    validated = model.model_validate(dict(params)).model_dump(mode="json")
    return SolveJob(str(uuid.uuid4()), task_type, validated, time.time() + timeout)
