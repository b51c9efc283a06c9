"""Named OCR models through the app, on both stores: a task naming one is read with it, an unknown
name is refused on ``model`` before money moves, offers list the models, removal is seen.

A real fine-tune needs torch (tests/acceptance/test_ocr_models_cli.py runs one); here the model
registered is the shipped network with its alphabet shifted by one place, which is a different model
in the one way that matters to these tests: every character it reads comes out as the next one.
"""

from __future__ import annotations

import base64
import io
import json
import time
from importlib import resources
from typing import Any

import httpx
import pytest

from cracker.domain.errors import TaskRejected
from cracker.domain.ocr_models import OcrModelRecord
from cracker.service.ocr_models import new_summary
from cracker.solvers.base import SolveJob
from cracker.solvers.ocr import OcrSolver
from tests.conftest import wait_terminal
from tests.unit.ocr.conftest import text_image

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
SHIFTED = ALPHABET[1:] + ALPHABET[0]


def shifted(text: str) -> str:
    return text.translate(str.maketrans(ALPHABET, SHIFTED))


def shifted_model(name: str) -> OcrModelRecord:
    folder = resources.files("cracker.solvers.ocr")
    metadata: dict[str, object] = json.loads(folder.joinpath("model.json").read_text())
    metadata["alphabet"] = SHIFTED
    onnx = folder.joinpath("model.onnx").read_bytes()
    summary = new_summary(name, base="general", score=0.9, base_score=0.5, held_out=10, trained_on=40,
                          size=len(onnx))
    return OcrModelRecord(summary=summary, onnx=onnx, metadata=metadata, checkpoint=None)


def image_b64(text: str) -> str:
    buffer = io.BytesIO()
    text_image(text).save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


async def solve(client: httpx.AsyncClient, **params: Any) -> dict[str, Any]:
    created = await client.post("/v2/tasks/image-to-text", json={"case_sensitive": True, **params})
    assert created.status_code == 201, created.text
    return await wait_terminal(client, created.json()["task_id"])


async def models_offered(client: httpx.AsyncClient) -> list[str]:
    offers = {o["type"]: o for o in (await client.get("/v2/offers")).json()["offers"]}
    assert all(o["models"] is None for t, o in offers.items() if t != "image-to-text")
    return [m["name"] for m in offers["image-to-text"]["models"]]


async def test_a_task_naming_a_model_is_read_with_it_and_removal_is_seen(api_factory: Any) -> None:
    """Protects: ``model`` reaches the solver (the shifted model's answer, not the general one's),
    any account may name a registered model (models are global), offers list it, and after removal
    the name is refused again; ``general`` is always accepted."""
    async with api_factory(in_process_workers=True) as api:
        models = api.runtime.ocr_models
        await models.add(shifted_model("site-a"))
        image = image_b64("K7PX")
        async with await api.client_for() as first, await api.client_for() as second:
            general = await solve(first, image_b64=image)
            named = await solve(first, image_b64=image, model="site-a")
            by_other_account = await solve(second, image_b64=image, model="site-a")
            explicit_general = await solve(second, image_b64=image, model="general")
            assert await models_offered(first) == ["general", "site-a"]
            assert general["status"] == named["status"] == "completed", (general, named)
            assert general["solution"]["token"] != named["solution"]["token"]
            assert named["solution"]["token"] == shifted(general["solution"]["token"])
            assert by_other_account["solution"] == named["solution"]
            assert explicit_general["solution"] == general["solution"]

            await models.remove("site-a")
            refused = await first.post("/v2/tasks/image-to-text", json={"image_b64": image, "model": "site-a"})
            assert refused.status_code == 422, refused.text
            assert await models_offered(first) == ["general"]


async def test_an_unknown_model_is_refused_on_model_and_nothing_is_held(api_factory: Any) -> None:
    """Protects: a name no operator registered is ``422 validation_failed`` on ``model`` (the field a
    client must fix), with no hold on the balance and no task left behind; a malformed name too."""
    async with api_factory() as api:
        async with await api.client_for() as client:
            for name, code in (("no-such-model", "unknown_model"), ("Bad Name!", "string_pattern_mismatch")):
                response = await client.post(
                    "/v2/tasks/image-to-text", json={"image_b64": image_b64("AB12"), "model": name}
                )
                assert response.status_code == 422, response.text
                error = response.json()["error"]
                assert error["code"] == "validation_failed"
                assert [(d["field"], d["code"]) for d in error["details"]] == [("model", code)]
            balance = (await client.get("/v2/balance")).json()
            assert balance["held"] == "0.0000"
            assert balance["balance"] == "10.0000"


async def test_a_model_removed_while_its_task_waits_rejects_the_task_uncharged(api_factory: Any) -> None:
    """Protects: a task accepted for a model that is removed before a worker reads it ends
    ``invalid_params`` (uncharged) rather than being read with another model."""
    async with api_factory() as api:  # no in-process worker: the task waits until we solve it
        await api.runtime.ocr_models.add(shifted_model("gone"))
        async with await api.client_for() as client:
            created = await client.post("/v2/tasks/image-to-text",
                                        json={"image_b64": image_b64("AB12"), "model": "gone"})
            assert created.status_code == 201, created.text
            await api.runtime.ocr_models.remove("gone")
        # The worker's side of it: the lane hands the solver the task's params as created.
        ocr = OcrSolver(models=api.runtime.ocr_models)
        await ocr.start()
        try:
            job = SolveJob(task_id=created.json()["task_id"], type="image-to-text",
                           params={"image_b64": image_b64("AB12"), "model": "gone"}, deadline=time.time() + 30)
            with pytest.raises(TaskRejected) as rejected:
                await ocr.solve(job)
        finally:
            await ocr.close()
        assert rejected.value.code == "invalid_params"
