"""image-to-text through the app: bad images refused at creation, undecodable pixels rejected
``invalid_image``, and the operator's second-look setting reaching the solver."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from cracker.domain.images import image_problem
from tests.conftest import Api, make_settings, running_api, wait_terminal
from tests.unit.ocr.test_images import BAD_IMAGES, png_declaring


@pytest.mark.parametrize(("name", "data", "reason"), BAD_IMAGES, ids=[case[0] for case in BAD_IMAGES])
async def test_bad_images_are_refused_at_creation(api: Api, name: str, data: bytes, reason: str) -> None:
    async with await api.client_for() as client:
        response = await client.post("/v2/tasks/image-to-text", json={"image_b64": base64.b64encode(data).decode()})
        balance = (await client.get("/v2/balance")).json()
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "validation_failed"
    assert [(d["field"], d["code"]) for d in error["details"]] == [("image_b64", "invalid_image")]
    assert balance["held"] == "0.0000"


async def test_corrupt_pixels_behind_a_valid_header_end_the_task_invalid_image(api: Api) -> None:
    corrupt = base64.b64encode(png_declaring(40, 20, b"not zlib data")).decode()
    assert image_problem(base64.b64decode(corrupt)) is None  # so creation accepts it
    async with await api.client_for() as client:
        created = await client.post("/v2/tasks/image-to-text", json={"image_b64": corrupt})
        assert created.status_code == 201, created.text
        done = await wait_terminal(client, created.json()["task_id"])
    assert done["status"] == "rejected"
    assert done["error"]["code"] == "invalid_image"


@pytest.mark.parametrize("second_look", [True, False])
async def test_operators_choose_the_second_look_with_a_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, second_look: bool
) -> None:
    monkeypatch.setenv("CRACKER_OCR_SECOND_LOOK", "true" if second_look else "false")
    async with running_api(make_settings(tmp_path)) as api:
        assert api.runtime.ocr.batcher.reader.second_look is second_look
