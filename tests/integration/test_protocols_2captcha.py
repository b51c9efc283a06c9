"""2captcha's in.php / res.php over HTTPS (``cracker serve --ssl-certfile --ssl-keyfile``), with
2captcha's published client and raw form, multipart and json=1 requests."""

from __future__ import annotations

import base64
import json
import secrets
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import altcha
import httpx
import pytest
from twocaptcha import TwoCaptcha
from twocaptcha.api import ApiException

from cracker.solvers.sandbox import TURNSTILE_DUMMY_TOKEN
from tests.conftest import LiveServer, started_server
from tests.integration.test_protocols_json import text_png

PAGE = "https://example.com/login"
TURNSTILE_KEY = "1x00000000000000000000AA"


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1, made now (nothing is downloaded)."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(cert), "-days", "1", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, Path]]:
    directory = tmp_path_factory.mktemp("twocaptcha")
    cert, key = self_signed(directory)
    # Every wrong answer refunded (the share's own rules are tests/integration/test_reports.py's).
    with started_server(directory, tls=(cert, key), CRACKER_REPORT_REFUND_SHARE="1") as live:
        yield live, cert


@pytest.fixture
def solver_for(tls_server: tuple[LiveServer, Path], monkeypatch: pytest.MonkeyPatch) -> Any:
    server, cert = tls_server
    # The client speaks https:// to `server` with requests, which trusts this bundle.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))

    def make(balance: str = "10.00") -> tuple[TwoCaptcha, str]:
        _, key = server.new_account(balance)
        return TwoCaptcha(key, server=server.base_url.removeprefix("https://"), pollingInterval=1,
                          defaultTimeout=30), key

    return make


def test_published_client_solves_image_altcha_turnstile_and_reads_the_balance(solver_for: Any) -> None:
    """Protects 2captcha's published client pointed at Cracker over HTTPS: an image read by the OCR
    (method=base64), an ALTCHA challenge whose answer ALTCHA's own verifier accepts, the Turnstile
    sandbox token, and the balance."""
    solver, _ = solver_for()
    hmac_key = secrets.token_hex(16)
    challenge = altcha.create_challenge_v1(
        altcha.ChallengeOptionsV1(algorithm="SHA-256", max_number=50_000, hmac_key=hmac_key)  # type: ignore[arg-type]
    ).to_dict()
    image = solver.normal(text_png("6284"), numeric=1)
    proof = solver.altcha(pageurl=PAGE, challenge_json=json.dumps(challenge))
    turnstile = solver.turnstile(sitekey=TURNSTILE_KEY, url=PAGE)
    assert image["code"] == "6284"
    assert altcha.verify_solution_v1(proof["code"], hmac_key) == (True, None)
    assert turnstile["code"] == TURNSTILE_DUMMY_TOKEN
    assert 0 < solver.balance() < 10


def test_published_client_reports_a_wrong_answer_and_gets_the_error_codes(solver_for: Any, tmp_path: Path) -> None:
    """Protects reportbad (the cost refunded, a second report refused) and the errors the client
    raises: a bad key, a zero balance, a method not served."""
    solver, key = solver_for()
    done = solver.normal(text_png("1739"), numeric=1)
    before = solver.balance()
    assert solver.report(done["captchaId"], correct=False) == "OK_REPORT_RECORDED"
    assert solver.balance() == pytest.approx(before + 0.0005)
    errors = []
    poor, _ = solver_for("0.00")
    for client, call in (
        (solver, lambda c: c.report(done["captchaId"], correct=False)),
        (TwoCaptcha("not-a-key", server=solver.api_client.post_url), lambda c: c.balance()),
        (poor, lambda c: c.turnstile(sitekey=TURNSTILE_KEY, url=PAGE)),
        (solver, lambda c: c.geetest(gt="x" * 32, challenge="y" * 32, url=PAGE)),
    ):
        with pytest.raises(ApiException) as raised:
            call(client)
        errors.append(str(raised.value))
    assert errors == ["ERROR_DUPLICATE_REPORT", "ERROR_KEY_DOES_NOT_EXIST", "ERROR_ZERO_BALANCE",
                      "ERROR_BAD_PARAMETERS"]
    del key, tmp_path


def test_multipart_upload_and_json_answers(tls_server: tuple[LiveServer, Path]) -> None:
    """Protects method=post (a multipart file), json=1 answers on both endpoints, CAPCHA_NOT_READY's
    JSON form, and another account's id answering ERROR_WRONG_CAPTCHA_ID."""
    server, cert = tls_server
    _, key = server.new_account("1.00")
    _, other = server.new_account("1.00")
    with httpx.Client(base_url=server.base_url, verify=ssl.create_default_context(cafile=str(cert))) as client:
        created = client.post("/in.php", data={"key": key, "method": "post", "json": "1", "numeric": "1"},
                              files={"file": ("captcha.png", base64.b64decode(text_png("2056")), "image/png")}).json()
        assert created["status"] == 1, created
        answer: dict[str, Any] = {}
        for _ in range(300):
            answer = client.get("/res.php", params={"key": key, "action": "get", "id": created["request"],
                                                    "json": "1"}).json()
            if answer["request"] != "CAPCHA_NOT_READY":
                break
            assert answer["status"] == 0
        foreign = client.get("/res.php", params={"key": other, "action": "get", "id": created["request"]}).text
        balance = client.get("/res.php", params={"key": key, "action": "getbalance", "json": "1"}).json()
        bad = client.post("/in.php", data={"key": key, "method": "base64", "body": "", "json": "1"}).json()
    assert answer == {"status": 1, "request": "2056"}
    assert foreign == "ERROR_WRONG_CAPTCHA_ID"
    assert balance == {"status": 1, "request": "0.9995"}
    assert bad["status"] == 0 and bad["request"] == "ERROR_BAD_PARAMETERS" and bad["error_text"]
