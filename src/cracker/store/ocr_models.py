"""SQL of the named OCR models (see ``cracker.domain.ocr_models``)."""

from __future__ import annotations

from typing import Any

import orjson
from sqlalchemy import delete, insert, select

from cracker.domain.ocr_models import OcrModelRecord, OcrModelSummary
from cracker.store.schema import ocr_models
from cracker.store.units import Reader, Writer

_SUMMARY = (
    ocr_models.c.name, ocr_models.c.score, ocr_models.c.base_score, ocr_models.c.held_out, ocr_models.c.trained_on,
    ocr_models.c.size, ocr_models.c.created_at, ocr_models.c.base,
)


def _summary(row: Any) -> OcrModelSummary:
    return OcrModelSummary(
        name=row.name, score=row.score, base_score=row.base_score, held_out=row.held_out, trained_on=row.trained_on,
        size=row.size, created_at=row.created_at, base=row.base,
    )


def list_models(r: Reader) -> list[OcrModelSummary]:
    """Every registered model, by name, without its weights (what every process polls)."""
    return [_summary(row) for row in r.conn.execute(select(*_SUMMARY).order_by(ocr_models.c.name))]


def get_model(r: Reader, name: str) -> OcrModelRecord | None:
    row = r.conn.execute(select(ocr_models).where(ocr_models.c.name == name)).first()
    if row is None:
        return None
    return OcrModelRecord(
        summary=_summary(row), onnx=bytes(row.onnx), metadata=orjson.loads(row.metadata),
        checkpoint=bytes(row.checkpoint) if row.checkpoint is not None else None,
    )


def add_model(tx: Writer, record: OcrModelRecord) -> bool:
    """Register a model; False (nothing written) when the name is taken."""
    summary = record.summary
    if tx.conn.execute(select(ocr_models.c.name).where(ocr_models.c.name == summary.name)).first() is not None:
        return False
    tx.conn.execute(insert(ocr_models).values(
        name=summary.name, onnx=record.onnx, checkpoint=record.checkpoint,
        metadata=orjson.dumps(record.metadata).decode(), base=summary.base, score=summary.score,
        base_score=summary.base_score, held_out=summary.held_out, trained_on=summary.trained_on, size=summary.size,
        created_at=summary.created_at,
    ))
    return True


def remove_model(tx: Writer, name: str) -> bool:
    return tx.conn.execute(delete(ocr_models).where(ocr_models.c.name == name)).rowcount > 0
