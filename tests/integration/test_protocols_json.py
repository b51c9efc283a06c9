"""The vendors' JSON protocol (createTask / getTaskResult / getBalance / reports) against the real
server, with CapSolver's published client and CapMonster Cloud's requests as its client sends them."""

from __future__ import annotations

import asyncio
import base64
import io
import time
from collections.abc import Iterator
from typing import Any

import capsolver
import httpx
import pytest
from PIL import Image, ImageDraw, ImageFont

from cracker.domain.money import format_usd
from cracker.solvers.sandbox import HCAPTCHA_TEST_KEYS, RECAPTCHA_V2_TEST_KEY, TURNSTILE_DUMMY_TOKEN
from tests.conftest import Api, LiveServer, started_server
from tests.timing import within

HCAPTCHA_KEY = next(iter(HCAPTCHA_TEST_KEYS))
TURNSTILE = {"websiteURL": "https://example.com/login", "websiteKey": "1x00000000000000000000AA"}


def text_png(text: str) -> str:
    """Plain black digits on white, which the OCR reads right."""
    image = Image.new("RGB", (160, 50), "white")
    ImageDraw.Draw(image).text((12, 6), text, fill="black", font=ImageFont.load_default(size=32))
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    # Every wrong answer refunded (the share's own rules are tests/integration/test_reports.py's).
    with started_server(tmp_path_factory.mktemp("protocols"), CRACKER_PROTOCOL_PREFIX="/compat",
                        CRACKER_REPORT_REFUND_SHARE="1") as live:
        yield live


def call(server: LiveServer, method: str, body: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    response = httpx.post(f"{server.base_url}{prefix}/{method}", json=body, timeout=30)
    assert response.status_code == 200, response.text  # the vendors answer errors with 200 too
    answer: dict[str, Any] = response.json()
    return answer


def solve(server: LiveServer, key: str, task: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    created = call(server, "createTask", {"clientKey": key, "task": task}, prefix)
    assert created["errorId"] == 0, created
    deadline = time.monotonic() + within(30)
    while time.monotonic() < deadline:
        result = call(server, "getTaskResult", {"clientKey": key, "taskId": created["taskId"]}, prefix)
        if result.get("status") != "processing":
            return {"taskId": created["taskId"], **result}
        time.sleep(0.1)
    raise AssertionError("the task did not end")


def test_capsolver_client_solves_an_image_and_a_turnstile_and_reads_the_balance(server: LiveServer) -> None:
    """Protects CapSolver's published client pointed at Cracker: the OCR's answer in solution.text,
    the Turnstile sandbox token, and the balance, unchanged client code."""
    _, key = server.new_account("10.00")
    capsolver.api_base, capsolver.api_key = server.base_url, key
    image = capsolver.solve({"type": "ImageToTextTask", "body": text_png("4827"), "numeric": 1})
    turnstile = capsolver.solve({"type": "AntiTurnstileTaskProxyLess", **TURNSTILE})
    balance = capsolver.balance()
    assert image["text"] == "4827"
    assert turnstile["token"] == TURNSTILE_DUMMY_TOKEN
    assert balance["errorId"] == 0
    assert 0 < balance["balance"] < 10


def test_capsolver_client_gets_the_vendor_error_codes(server: LiveServer) -> None:
    """Protects the errors CapSolver's client raises: a bad key, a zero balance, an unknown type."""
    _, poor = server.new_account("0.00")
    _, key = server.new_account("1.00")
    capsolver.api_base = server.base_url
    codes = []
    for api_key, task in (
        ("not-a-key", {"type": "AntiTurnstileTaskProxyLess", **TURNSTILE}),
        (poor, {"type": "AntiTurnstileTaskProxyLess", **TURNSTILE}),
        (key, {"type": "FunCaptchaTaskProxyLess", **TURNSTILE}),
    ):
        capsolver.api_key = api_key
        with pytest.raises(capsolver.error.CapsolverError) as raised:
            capsolver.solve(task)
        codes.append(raised.value.json_body["errorCode"])
    assert codes == ["ERROR_KEY_DOES_NOT_EXIST", "ERROR_ZERO_BALANCE", "ERROR_TASK_NOT_SUPPORTED"]


def test_capmonster_requests_as_its_client_sends_them(server: LiveServer) -> None:
    """Protects CapMonster Cloud's wire (its client sends softId, ``Case``, and polls taskId back as
    createTask gave it): an image read by the OCR, a Turnstile token, under the operator's prefix too."""
    _, key = server.new_account("10.00")
    image = {"type": "ImageToTextTask", "body": text_png("3915"), "Case": True, "numeric": 1}
    created = call(server, "createTask", {"clientKey": key, "task": image, "softId": 55})
    assert created["errorId"] == 0 and isinstance(created["taskId"], int), created
    read = solve(server, key, image)
    turnstile = solve(server, key, {"type": "TurnstileTask", **TURNSTILE}, prefix="/compat")
    assert read["status"] == "ready" and read["solution"] == {"text": "3915"}
    assert read["cost"] == "0.0005" and read["endTime"] >= read["createTime"]
    assert turnstile["solution"]["token"] == TURNSTILE_DUMMY_TOKEN
    assert call(server, "getBalance", {"clientKey": key}, "/compat")["errorId"] == 0


def test_capmonster_client_if_installed(server: LiveServer) -> None:
    """Protects CapMonster Cloud's published client (scripts/test.sh installs it without its exact
    pins, see docs/protocols.md) pointed at Cracker: an image read by the OCR, the Turnstile sandbox
    token, the balance, and its error paths (a bad key, an empty balance, an unknown module) raised
    as the client's own exceptions with the vendor's codes."""
    cm = pytest.importorskip("capmonstercloudclient")
    requests = pytest.importorskip("capmonstercloudclient.requests")
    errors = pytest.importorskip("capmonstercloudclient.exceptions")
    _, key = server.new_account("10.00")
    _, broke = server.new_account("0.00")
    client = cm.CapMonsterClient(options=cm.ClientOptions(api_key=key, service_url=server.base_url))
    bad_key = cm.CapMonsterClient(options=cm.ClientOptions(api_key="ck_" + "x" * 43, service_url=server.base_url))
    no_money = cm.CapMonsterClient(options=cm.ClientOptions(api_key=broke, service_url=server.base_url))
    image = base64.b64decode(text_png("3915"))

    async def run() -> tuple[dict[str, str], dict[str, str], Any, list[str]]:
        read = await client.solve_captcha(requests.ImageToTextRequest(image_bytes=image, numeric=1))
        solution = await client.solve_captcha(requests.TurnstileRequest(websiteURL=TURNSTILE["websiteURL"],
                                                                        websiteKey=TURNSTILE["websiteKey"]))
        refused: list[str] = []
        for call_ in (bad_key.get_balance(),
                      no_money.solve_captcha(requests.ImageToTextRequest(image_bytes=image)),
                      client.solve_captcha(requests.ImageToTextRequest(image_bytes=image, module_name="steam"))):
            try:
                await call_
            except errors.BaseError as exc:
                refused.append(f"{type(exc).__name__}: {exc}")
        return read, solution, await client.get_balance(), refused

    read, solution, balance, refused = asyncio.run(run())
    assert read["text"] == "3915"
    assert solution["token"] == TURNSTILE_DUMMY_TOKEN
    assert balance["errorId"] == 0
    assert len(refused) == 3, refused
    assert refused[0].startswith("GetBalanceError") and "ERROR_KEY_DOES_NOT_EXIST" in refused[0]
    assert refused[1].startswith("GetTaskError") and "ERROR_ZERO_BALANCE" in refused[1]
    assert refused[2].startswith("GetTaskError") and "no OCR model named 'steam'" in refused[2]


def test_a_wrong_answer_report_refunds_and_a_second_is_refused(server: LiveServer) -> None:
    """Protects reportIncorrectImageCaptcha: the task's cost back in the balance, once."""
    _, key = server.new_account("1.00")
    done = solve(server, key, {"type": "ImageToTextTask", "body": text_png("5072"), "numeric": 1})
    before = call(server, "getBalance", {"clientKey": key})["balance"]
    first = call(server, "reportIncorrectImageCaptcha", {"clientKey": key, "taskId": done["taskId"]})
    second = call(server, "reportIncorrectImageCaptcha", {"clientKey": key, "taskId": done["taskId"]})
    after = call(server, "getBalance", {"clientKey": key})["balance"]
    assert first == {"errorId": 0, "status": "success"}
    assert second["errorCode"] == "ERROR_ALREADY_REPORTED"
    assert after == pytest.approx(before + 0.0005)


def test_another_accounts_task_number_is_unknown(server: LiveServer) -> None:
    """Protects tenants from each other: a task number of another account can be neither read
    nor reported (ERROR_NO_SUCH_CAPCHA_ID, as for a number never handed out)."""
    _, owner = server.new_account("1.00")
    _, other = server.new_account("1.00")
    done = solve(server, owner, {"type": "TurnstileTaskProxyless", **TURNSTILE})
    for method in ("getTaskResult", "reportIncorrectRecaptcha"):
        answer = call(server, method, {"clientKey": other, "taskId": done["taskId"]})
        assert answer["errorCode"] == "ERROR_NO_SUCH_CAPCHA_ID", answer
    never = call(server, "getTaskResult", {"clientKey": owner, "taskId": 2**63 - 1})
    assert never["errorCode"] == "ERROR_NO_SUCH_CAPCHA_ID"


@pytest.mark.parametrize(("task", "code"), [
    ({"type": "ImageToTextTask", "body": "", "phrase": True}, "ERROR_TASK_NOT_SUPPORTED"),
    ({"type": "ImageToTextTask", "body": "", "math": 1}, "ERROR_TASK_NOT_SUPPORTED"),
    ({"type": "ImageToTextTask", "body": "not base64!"}, "ERROR_INCORRECT_SESSION_DATA"),
    ({"type": "RecaptchaV2TaskProxyless", "websiteURL": "https://example.com"}, "ERROR_INCORRECT_SESSION_DATA"),
    ({"type": "ImageToTextTask", "body": base64.b64encode(b"GIF89a, not really").decode()},
     "ERROR_IMAGE_TYPE_NOT_SUPPORTED"),
    ({"websiteURL": "https://example.com"}, "ERROR_TASK_NOT_SUPPORTED"),
    ("not an object", "ERROR_TASK_ABSENT"),
])
def test_bad_tasks_are_refused_with_the_vendor_code_and_nothing_held(
    server: LiveServer, task: Any, code: str
) -> None:
    """Protects clients from half-understood tasks: a hint the OCR cannot honour, a bad field, no
    type, each refused with its code, and no money held."""
    _, key = server.new_account("1.00")
    answer = call(server, "createTask", {"clientKey": key, "task": task})
    assert answer["errorId"] != 0 and answer["errorCode"] == code, answer
    assert answer["errorDescription"]
    assert call(server, "getBalance", {"clientKey": key})["balance"] == 1.0


async def test_task_numbers_are_unique_per_task_on_both_stores(api: Api) -> None:
    """Protects the number <-> task mapping on SQLite and PostgreSQL: each create gets its own
    number, and the number reads back the task it names."""
    _, key = await api.account("1.00")
    async with api.client(key) as client:
        numbers = []
        for _ in range(5):
            created = (await client.post("/createTask", json={"clientKey": key, "task": {
                "type": "TurnstileTaskProxyless", **TURNSTILE}})).json()
            numbers.append(created["taskId"])
        results = [(await client.post("/getTaskResult", json={"clientKey": key, "taskId": n})).json()
                   for n in numbers]
    assert len(set(numbers)) == 5 and all(isinstance(n, int) and 0 < n < 2**53 for n in numbers)
    assert all(r["errorId"] == 0 for r in results), results




@pytest.mark.parametrize("task", [
    {"type": "NoCaptchaTaskProxyless", "websiteKey": RECAPTCHA_V2_TEST_KEY},
    {"type": "ReCaptchaV2TaskProxyLess", "websiteKey": RECAPTCHA_V2_TEST_KEY},
    {"type": "RecaptchaV2Task", "websiteKey": RECAPTCHA_V2_TEST_KEY, "proxyType": "http",
     "proxyAddress": "10.0.0.1", "proxyPort": 3128, "proxyLogin": "u", "proxyPassword": "p"},
    {"type": "HCaptchaTaskProxyless", "websiteKey": HCAPTCHA_KEY},
])
def test_recaptcha_and_hcaptcha_spellings_reach_the_sandbox(server: LiveServer, task: dict[str, Any]) -> None:
    """Protects the vendors' reCAPTCHA and hCaptcha type names and fields (proxy included) mapped
    to ours: the sandbox's token under gRecaptchaResponse, as Anti-Captcha and CapMonster read it."""
    _, key = server.new_account("1.00")
    done = solve(server, key, {"websiteURL": "https://example.com/form", **task})
    assert done["status"] == "ready", done
    assert done["solution"]["gRecaptchaResponse"] == done["solution"]["token"] != ""
    if task["type"].startswith("HCaptcha"):
        assert done["solution"]["token"] == HCAPTCHA_TEST_KEYS[HCAPTCHA_KEY]


def test_a_task_without_a_solver_answers_no_slot(server: LiveServer) -> None:
    """Protects the answer for a type sold but with nothing to solve it here (a real reCAPTCHA v3 key
    and no pool attached): ERROR_NO_SLOT_AVAILABLE, nothing held."""
    _, key = server.new_account("1.00")
    answer = call(server, "createTask", {"clientKey": key, "task": {
        "type": "RecaptchaV3TaskProxyless", "websiteURL": "https://example.com", "websiteKey": "6Lreal",
        "pageAction": "login"}})
    assert answer["errorCode"] == "ERROR_NO_SLOT_AVAILABLE", answer
    assert call(server, "getBalance", {"clientKey": key})["balance"] == 1.0


def test_a_rejected_task_answers_unsolvable_and_its_hold_comes_back(server: LiveServer) -> None:
    """Protects getTaskResult for a task that fails (Turnstile's always-failing test key):
    ERROR_CAPTCHA_UNSOLVABLE with our reason, the held price released."""
    _, key = server.new_account("1.00")
    done = solve(server, key, {"type": "TurnstileTaskProxyless", "websiteURL": "https://example.com",
                               "websiteKey": "2x00000000000000000000AB"})
    assert (done["errorId"], done["errorCode"]) == (12, "ERROR_CAPTCHA_UNSOLVABLE"), done
    assert done["errorDescription"]
    assert call(server, "getBalance", {"clientKey": key})["balance"] == 1.0


async def test_an_image_task_names_a_fine_tuned_model_by_module(api_factory: Any) -> None:
    """Protects the named OCR models through the JSON protocol: ImageToTextTask's ``module``
    (CapMonster's per-site recognition module; ``model`` too) reaches the solver, whose answer is
    the named model's (a shifted alphabet), not the general one's; an unknown name is refused with
    the vendor's code and the name in its description, and nothing held."""
    from tests.integration.test_ocr_models import image_b64, shifted, shifted_model

    async with api_factory(in_process_workers=True) as api:
        await api.runtime.ocr_models.add(shifted_model("site-j"))
        _, key = await api.account("1.00")
        image = image_b64("K7PX")
        async with api.client() as client:
            async def read(**extra: Any) -> dict[str, Any]:
                task = {"type": "ImageToTextTask", "body": image, "case": True, **extra}
                created = (await client.post("/createTask", json={"clientKey": key, "task": task})).json()
                assert created["errorId"] == 0, created
                for _ in range(200):
                    result = (await client.post("/getTaskResult", json={"clientKey": key,
                                                                        "taskId": created["taskId"]})).json()
                    if result.get("status") == "ready":
                        return result
                    await asyncio.sleep(0.05)
                raise AssertionError(result)

            general = await read()
            by_module = await read(module="site-j")
            by_model = await read(model="site-j")
            unknown = (await client.post("/createTask", json={"clientKey": key, "task": {
                "type": "ImageToTextTask", "body": image, "module": "no-such-site"}})).json()
            balance = (await client.post("/getBalance", json={"clientKey": key})).json()
    assert by_module["solution"]["text"] == by_model["solution"]["text"] == shifted(general["solution"]["text"])
    assert by_module["solution"]["text"] != general["solution"]["text"]
    assert unknown["errorCode"] == "ERROR_INCORRECT_SESSION_DATA", unknown
    assert "no OCR model named 'no-such-site'" in unknown["errorDescription"], unknown
    price = await api.runtime.offers.price("image-to-text")
    assert price is not None
    assert balance["balance"] == float(format_usd(10_000 - 3 * price))
