"""Named OCR models on both stores: the weights round-trip byte for byte, a name is registered once,
and another process's registry (a second store on the same database) sees adds and removals
within its refresh interval, and a name it has not heard of at once."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from cracker.domain.ocr_models import OcrModelRecord
from cracker.service.ocr_models import ModelNameTaken, OcrModelService, new_summary
from cracker.store import Store


def _record(name: str, onnx: bytes = b"\x00onnx\xff" * 1000) -> OcrModelRecord:
    summary = new_summary(name, base="general", score=0.93, base_score=0.61, held_out=20, trained_on=80,
                          size=len(onnx))
    return OcrModelRecord(summary=summary, onnx=onnx, metadata={"alphabet": "ab", "height": 32, "width": 192},
                          checkpoint=b"\x01weights")


async def test_a_model_round_trips_and_a_name_is_registered_once(store: Store) -> None:
    """Protects: the bytes (binary, not text) and metadata come back as written; a second add under
    the same name is refused and leaves the first."""
    name = f"m-{uuid.uuid4().hex[:12]}"
    models = OcrModelService(store)
    record = _record(name)
    await models.add(record)
    with pytest.raises(ModelNameTaken):
        await models.add(_record(name, onnx=b"other"))
    stored = await models.stored(name)
    assert stored == record
    assert name in [summary.name for summary in await models.list()]
    await models.remove(name)
    assert await models.stored(name) is None


async def test_another_process_sees_adds_at_once_and_removals_within_its_refresh(
    store: Store, second_store: Store
) -> None:
    """Protects: a process that cached the list before a model was added still accepts its name
    (looked up afresh), serves its weights, and stops after removal within ``refresh_s``."""
    name = f"m-{uuid.uuid4().hex[:12]}"
    here, elsewhere = OcrModelService(store), OcrModelService(second_store, refresh_s=0.3)
    assert not await elsewhere.exists(name)  # its list is now cached
    await here.add(_record(name))
    assert await elsewhere.exists(name)
    loaded = await elsewhere.record(name)
    assert loaded is not None and loaded.onnx == _record(name).onnx
    await here.remove(name)
    await asyncio.sleep(0.35)
    assert not await elsewhere.exists(name)
    assert await elsewhere.record(name) is None
