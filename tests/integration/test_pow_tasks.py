"""Proof-of-work task types end to end through the API, each answer checked by the vendor's verifier."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from typing import Any

import altcha
import capjs_server

from tests.conftest import Api, wait_terminal
from tests.unit.pow.test_pow_friendly import passes, random_puzzle
from tests.unit.pow.test_pow_mcaptcha import independent_score


async def solve(api: Api, task_type: str, fields: dict[str, Any]) -> dict[str, Any]:
    async with await api.client_for() as client:
        created = await client.post(f"/v2/tasks/{task_type}", json=fields)
        assert created.status_code == 201, created.text
        done = await wait_terminal(client, created.json()["task_id"], timeout=60)
    assert done["status"] == "completed", done
    return done


async def test_altcha_v1_via_the_api(api: Api) -> None:
    key = secrets.token_hex(16)
    challenge = altcha.create_challenge_v1(
        altcha.ChallengeOptionsV1(algorithm="SHA-256", max_number=100_000, hmac_key=key)  # type: ignore[arg-type]
    ).to_dict()
    done = await solve(api, "altcha", {"challenge": challenge})
    assert altcha.verify_solution_v1(done["solution"]["token"], key) == (True, None)
    assert done["cost"] == "0.0002"


async def test_cap_via_the_api(api: Api) -> None:
    server = capjs_server.CapServer(secrets.token_hex(16), challenge_count=8, challenge_size=16,
                                    challenge_difficulty=3)
    answer = server.create_challenge()
    done = await solve(api, "cap", {"challenge": answer})
    body = json.loads(done["solution"]["token"])
    result = server.redeem(body["token"], body["solutions"])
    assert result["success"], result


async def test_mcaptcha_via_the_api(api: Api) -> None:
    config = {"string": secrets.token_hex(15), "salt": secrets.token_hex(15), "difficulty_factor": 50_000,
              "max_recorded_nonce": 0}
    done = await solve(api, "mcaptcha", {"config": config, "site_key": "site-key"})
    body = json.loads(done["solution"]["token"])
    score = independent_score(config["salt"], config["string"], body["nonce"])
    assert str(score) == body["result"]
    u128 = 2**128 - 1
    assert score >= u128 - u128 // 50_000


async def test_friendly_captcha_via_the_api(api: Api) -> None:
    puzzle = random_puzzle(count=4, difficulty=60, size=32)
    done = await solve(api, "friendly-captcha", {"puzzle": puzzle})
    signature, buffer_b64, solutions_b64, _diagnostics = done["solution"]["token"].split(".")
    assert f"{signature}.{buffer_b64}" == puzzle
    buffer, solutions = base64.b64decode(buffer_b64), base64.b64decode(solutions_b64)
    assert all(passes(buffer, i, solutions[8 * i: 8 * i + 8], 60) for i in range(4))


async def test_pow_sha256_answer_is_independently_valid(api: Api) -> None:
    data = secrets.token_hex(8)
    done = await solve(api, "pow-sha256", {"data": data, "difficulty": 4})
    body = json.loads(done["solution"]["token"])
    digest = hashlib.sha256(f"{data}{body['nonce']}".encode()).hexdigest()  # recomputed, not trusted
    assert digest == body["hash"] and digest.startswith("0000")


async def test_altcha_code_challenge_is_rejected_unsupported(api: Api) -> None:
    """A code challenge (an image to read besides the work) is accepted, then rejected
    ``unsupported_challenge`` and released: the proof of work alone would not pass the site."""
    key = secrets.token_hex(16)
    challenge = altcha.create_challenge_v1(
        altcha.ChallengeOptionsV1(algorithm="SHA-256", max_number=1000, hmac_key=key)  # type: ignore[arg-type]
    ).to_dict()
    challenge["codeChallenge"] = {"image": "data:image/png;base64,AAAA", "length": 4}
    async with await api.client_for() as client:
        created = await client.post("/v2/tasks/altcha", json={"challenge": challenge})
        assert created.status_code == 201, created.text
        done = await wait_terminal(client, created.json()["task_id"])
        balance = (await client.get("/v2/balance")).json()
    assert done["status"] == "rejected"
    assert done["error"]["code"] == "unsupported_challenge"
    assert balance["balance"] == "10.0000"


async def test_malformed_altcha_challenge_names_the_field(api: Api) -> None:
    async with await api.client_for() as client:
        response = await client.post("/v2/tasks/altcha", json={"challenge": {"algorithm": "MD5", "salt": "x"}})
    assert response.status_code == 422
    fields = {d["field"] for d in response.json()["error"]["details"]}
    assert any(f.startswith("challenge") for f in fields), fields
