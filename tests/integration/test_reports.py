"""Reports of answers (POST /v2/tasks/{task_id}/report): refunds within the share, one report per
task, only the owner, only completed tasks within the window, labelled images kept; on both stores."""

from __future__ import annotations

import asyncio
import base64
import io
from collections import Counter

import httpx
from PIL import Image

from cracker.domain.accounts import Scope
from cracker.domain.tasks import ClaimedTask
from cracker.store import audit
from tests.clock import ManualClock
from tests.conftest import TURNSTILE_PASS, Api, wait_terminal
from tests.integration.store.contract.helpers import assert_books_balance
from tests.integration.test_billing import complete

TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}
#: The default share (0.15) refunds floor(0.15 x n) of n completed tasks: 7 is the fewest with one.
FEWEST_FOR_ONE_REFUND = 7


async def completed_turnstiles(client: httpx.AsyncClient, count: int) -> list[str]:
    """``count`` completed turnstile tasks (0.0009 each) of the client's account, by the in-process worker."""
    ids = []
    for _ in range(count):
        created = await client.post("/v2/tasks/turnstile", json=TURNSTILE)
        assert created.status_code == 201, created.text
        ids.append(created.json()["task_id"])
    for task_id in ids:
        assert (await wait_terminal(client, task_id))["status"] == "completed"
    return ids


async def ledger_of(api: Api, client: httpx.AsyncClient) -> list[tuple[str | None, str, int, int]]:
    """The ledger of the client's account."""
    key = await api.runtime.accounts.authenticate(client.headers["x-solvium-auth"], Scope.CLIENT)
    return await api.runtime.store.read(lambda r: r.ledger_entries(key.account_id))


def png(text: str) -> str:
    image = Image.new("L", (80, 30), 255)
    buffer = io.BytesIO()
    image.save(buffer, "PNG", pnginfo=None)
    # A distinct image per text: the label pairs must come back with their own image.
    return base64.b64encode(buffer.getvalue() + text.encode()).decode()


async def test_an_incorrect_report_refunds_the_cost_as_a_ledger_row(api: Api) -> None:
    """Protects the refund itself: the task's cost back to the balance as one `refund` ledger row,
    the answer saying so in USD, the books still balanced and audited clean, the metric counted."""
    async with await api.client_for("1.00") as client:
        ids = await completed_turnstiles(client, FEWEST_FOR_ONE_REFUND)
        before = (await client.get("/v2/balance")).json()
        response = await client.post(f"/v2/tasks/{ids[0]}/report", json={"correct": False})
        after = (await client.get("/v2/balance")).json()
        ledger = await ledger_of(api, client)
        metrics = (await client.get("/metrics")).text
    assert response.status_code == 200, response.text
    body = response.json()
    assert body.pop("reported_at").endswith("Z")
    assert body == {
        "task_id": ids[0], "correct": False, "refunded": True, "refund": "0.0009", "refund_refused": None,
        "labelled": False, "balance": "0.9946", "currency": "USD",
    }
    assert before == {"balance": "0.9937", "held": "0.0000", "currency": "USD"}
    assert after == {"balance": "0.9946", "held": "0.0000", "currency": "USD"}
    assert [row for row in ledger if row[0] == ids[0]] == [
        (ids[0], "hold", -9, 9), (ids[0], "capture", 0, -9), (ids[0], "refund", 9, 0),
    ]
    assert 'cracker_task_reports_total{outcome="refunded",type="turnstile"}' in metrics
    await assert_books_balance(api.runtime.store)


async def test_a_correct_report_refunds_nothing(api: Api) -> None:
    """Protects the books from a correct report: recorded, no refund, no ledger row."""
    async with await api.client_for("1.00") as client:
        ids = await completed_turnstiles(client, FEWEST_FOR_ONE_REFUND)
        before = await ledger_of(api, client)
        response = await client.post(f"/v2/tasks/{ids[0]}/report", json={"correct": True})
        after = await ledger_of(api, client)
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["correct"], body["refunded"], body["refund"], body["refund_refused"], body["balance"]) == (
        True, False, "0.0000", None, "0.9937"
    )
    assert after == before


async def test_a_second_report_of_a_task_is_refused(api: Api) -> None:
    """Protects against a task reported twice (a correct one then an incorrect one for its refund)."""
    async with await api.client_for("1.00") as client:
        ids = await completed_turnstiles(client, FEWEST_FOR_ONE_REFUND)
        first = await client.post(f"/v2/tasks/{ids[0]}/report", json={"correct": True})
        second = await client.post(f"/v2/tasks/{ids[0]}/report", json={"correct": False})
        third = await client.post(f"/v2/tasks/{ids[0]}/report", json={"correct": True})
        balance = (await client.get("/v2/balance")).json()
    assert first.status_code == 200
    assert (second.status_code, second.json()["error"]["code"]) == (409, "already_reported")
    assert (third.status_code, third.json()["error"]["code"]) == (409, "already_reported")
    assert balance["balance"] == "0.9937"


async def test_simultaneous_reports_of_one_task_refund_once(api: Api) -> None:
    """Protects the one-refund rule under concurrency: eight reports of one task at once, and
    reports of the account's other tasks beside them, give exactly one refund per task."""
    async with await api.client_for("1.00") as client:
        ids = await completed_turnstiles(client, 20)  # room for 3 refunds
        responses = await asyncio.gather(
            *(client.post(f"/v2/tasks/{ids[0]}/report", json={"correct": False}) for _ in range(8)),
            client.post(f"/v2/tasks/{ids[1]}/report", json={"correct": False}),
        )
        balance = (await client.get("/v2/balance")).json()
        ledger = await ledger_of(api, client)
    same_task = Counter(r.status_code for r in responses[:8])
    assert same_task == {200: 1, 409: 7}, [r.text for r in responses]
    assert {r.json()["error"]["code"] for r in responses[:8] if r.status_code == 409} == {"already_reported"}
    assert responses[8].json()["refunded"] is True
    assert [row[0] for row in ledger if row[1] == "refund"].count(ids[0]) == 1
    assert balance["balance"] == "0.9838"  # 1.0000 - 20 x 0.0009 + 2 x 0.0009
    await assert_books_balance(api.runtime.store)


async def test_simultaneous_reports_of_many_tasks_stay_within_the_share(api: Api) -> None:
    """Protects the share under concurrency: twelve incorrect reports of different tasks at once,
    with room for 3 refunds, give exactly 3 (each report counts the refunds of the others)."""
    async with await api.client_for("1.00") as client:
        ids = await completed_turnstiles(client, 20)
        responses = await asyncio.gather(
            *(client.post(f"/v2/tasks/{task_id}/report", json={"correct": False}) for task_id in ids[:12])
        )
        balance = (await client.get("/v2/balance")).json()
    assert [r.status_code for r in responses] == [200] * 12
    assert Counter(r.json()["refunded"] for r in responses) == {True: 3, False: 9}
    assert balance["balance"] == "0.9847"  # 1.0000 - 20 x 0.0009 + 3 x 0.0009
    await assert_books_balance(api.runtime.store)


async def test_the_refund_share_is_exact_at_its_boundary_and_counted_per_type(api: Api) -> None:
    """Protects against refund farming: of 20 completed tasks of a type, floor(0.15 x 20) = 3
    incorrect reports are refunded and the 4th is recorded without one (refund_refused says why);
    another type's share is its own, and an account with 6 tasks (0.9) gets none."""
    async with await api.client_for("1.00") as client:
        ids = await completed_turnstiles(client, 20)
        answers = [(await client.post(f"/v2/tasks/{i}/report", json={"correct": False})).json() for i in ids[:5]]
        pow_ids = []
        for index in range(FEWEST_FOR_ONE_REFUND):
            created = await client.post("/v2/tasks/pow-sha256", json={"data": f"r{index}", "difficulty": 1})
            pow_ids.append(created.json()["task_id"])
        for task_id in pow_ids:
            assert (await wait_terminal(client, task_id))["status"] == "completed"
        pow_answer = (await client.post(f"/v2/tasks/{pow_ids[0]}/report", json={"correct": False})).json()
    assert [(a["refunded"], a["refund"], a["refund_refused"]) for a in answers] == [
        (True, "0.0009", None), (True, "0.0009", None), (True, "0.0009", None),
        (False, "0.0000", "share_exceeded"), (False, "0.0000", "share_exceeded"),
    ]
    assert answers[3]["balance"] == answers[2]["balance"] == "0.9847"
    assert pow_answer["refunded"] is True, pow_answer
    async with await api.client_for("1.00") as small:
        few = await completed_turnstiles(small, FEWEST_FOR_ONE_REFUND - 1)
        refused = (await small.post(f"/v2/tasks/{few[0]}/report", json={"correct": False})).json()
    assert (refused["refunded"], refused["refund_refused"]) == (False, "share_exceeded")
    await assert_books_balance(api.runtime.store)


async def test_another_accounts_task_is_not_found_and_nothing_moves(api: Api) -> None:
    """Protects tenants from each other: reporting another account's task answers exactly as an
    unknown id does (404 not_found), refunds no one and records nothing, so the owner still can."""
    async with await api.client_for("1.00") as owner, await api.client_for("1.00") as other:
        ids = await completed_turnstiles(owner, FEWEST_FOR_ONE_REFUND)
        owner_before = (await owner.get("/v2/balance")).json()
        other_before = (await other.get("/v2/balance")).json()
        theirs = await other.post(f"/v2/tasks/{ids[0]}/report", json={"correct": False})
        unknown = await other.post("/v2/tasks/01959e02-08fd-7000-8cbe-f682a959b3c1/report", json={"correct": False})
        owner_after = (await owner.get("/v2/balance")).json()
        other_after = (await other.get("/v2/balance")).json()
        owners_own = await owner.post(f"/v2/tasks/{ids[0]}/report", json={"correct": False})
    assert theirs.status_code == unknown.status_code == 404
    assert theirs.json()["error"]["code"] == unknown.json()["error"]["code"] == "not_found"
    assert (owner_after, other_after) == (owner_before, other_before)
    assert owners_own.status_code == 200 and owners_own.json()["refunded"] is True


async def test_only_a_completed_task_can_be_reported(api_factory) -> None:  # type: ignore[no-untyped-def]
    """Protects the refund from tasks that were never charged: pending, running and rejected
    tasks are refused with 409 task_not_completed, and nothing is written."""
    async with api_factory(in_process_workers=False) as api:
        async with await api.client_for("1.00") as client:
            running = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
            (claim,) = await api.runtime.tasks.claim(["turnstile"], "tests", 1, 60)
            assert claim.task.id == running
            rejected = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
            assert await api.runtime.tasks.reject(rejected, "upstream_error") is not None
            pending = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
            before = (await client.get("/v2/balance")).json()
            answers = {
                state: await client.post(f"/v2/tasks/{task_id}/report", json={"correct": False})
                for state, task_id in (("pending", pending), ("running", running), ("rejected", rejected))
            }
            after = (await client.get("/v2/balance")).json()
        await assert_books_balance(api.runtime.store)
    for state, response in answers.items():
        error = response.json()["error"]
        assert (response.status_code, error["code"]) == (409, "task_not_completed"), state
        assert f"is {state}" in error["message"]
    assert after == before


async def test_a_report_after_the_window_is_refused(api_factory) -> None:  # type: ignore[no-untyped-def]
    """Protects the operator's window (CRACKER_REPORT_WINDOW_S): a report after it is 409
    report_window_closed and refunds nothing; within it the same kind of report is accepted.
    On a clock the test moves: with the wall clock, a loaded machine took more than the window
    between the fresh task's completion and its report (one CI run in many)."""
    clock = ManualClock()
    async with api_factory(report_window_s=1.0, report_refund_share=1.0, clock=clock) as api:
        async with await api.client_for("1.00") as client:
            old, fresh = await completed_turnstiles(client, 2)
            clock.advance(1.2)
            (fresh,) = await completed_turnstiles(client, 1)
            late = await client.post(f"/v2/tasks/{old}/report", json={"correct": False})
            in_time = await client.post(f"/v2/tasks/{fresh}/report", json={"correct": False})
            balance = (await client.get("/v2/balance")).json()
    assert (late.status_code, late.json()["error"]["code"]) == (409, "report_window_closed"), late.text
    assert in_time.status_code == 200 and in_time.json()["refunded"] is True
    assert balance["balance"] == "0.9982"  # 3 tasks, one refunded


async def test_bad_reports_are_refused_and_leave_nothing(api: Api) -> None:
    """Protects the contract's edges: `expected` only on image tasks and only with correct=false,
    a bad body or id is 422, and none of them records a report (the task can still be reported)."""
    async with await api.client_for("1.00") as client:
        ids = await completed_turnstiles(client, FEWEST_FOR_ONE_REFUND)
        answers = [
            await client.post(f"/v2/tasks/{ids[0]}/report", json=body)
            for body in (
                {"correct": False, "expected": "ABCD"},  # not an image task
                {"correct": True, "expected": "ABCD"},
                {"correct": "false"},  # strict JSON types
                {},
                {"correct": False, "extra": 1},
                {"correct": False, "expected": ""},
            )
        ]
        bad_id = await client.post("/v2/tasks/not-a-uuid/report", json={"correct": False})
        still = await client.post(f"/v2/tasks/{ids[0]}/report", json={"correct": False})
    fields = [[d["field"] for d in r.json()["error"]["details"]] for r in answers]
    assert [r.status_code for r in answers] == [422] * 6
    assert fields[0] == ["expected"] and fields[1] == ["expected"] and fields[2] == ["correct"]
    assert bad_id.status_code == 422 and bad_id.json()["error"]["details"][0]["field"] == "task_id"
    assert still.status_code == 200 and still.json()["refunded"] is True


async def _completed_images(api: Api, client: httpx.AsyncClient, answers: list[str]) -> list[tuple[str, str]]:
    """Image tasks completed by hand with these answers: (task id, image_b64) each."""
    created = []
    for answer in answers:
        image = png(answer)
        response = await client.post("/v2/tasks/image-to-text", json={"image_b64": image})
        assert response.status_code == 201, response.text
        created.append((response.json()["task_id"], image))
    claims: dict[str, ClaimedTask] = {
        c.task.id: c for c in await api.runtime.tasks.claim(["image-to-text"], "tests", len(answers), 60)
    }
    for (task_id, _image), answer in zip(created, answers, strict=True):
        assert await complete(api, claims[task_id], {"token": answer}) is not None
    return created


async def test_reported_images_are_kept_as_labels_after_the_task_is_gone(api_factory) -> None:  # type: ignore[no-untyped-def]
    """Protects the fine-tuning set: an incorrect report with `expected` keeps (image, expected),
    a correct one (image, answer), one without `expected` nothing; the image is a copy, still
    there after retention deleted the task."""
    async with api_factory(in_process_workers=False, report_refund_share=1.0) as api:
        async with await api.client_for("1.00") as client:
            tasks = await _completed_images(api, client, ["AB12", "CD34", "EF56", "GH78"])
            wrong = await client.post(f"/v2/tasks/{tasks[0][0]}/report", json={"correct": False, "expected": "AB13"})
            right = await client.post(f"/v2/tasks/{tasks[1][0]}/report", json={"correct": True})
            unlabelled = await client.post(f"/v2/tasks/{tasks[2][0]}/report", json={"correct": False})
            await asyncio.sleep(0.05)
            purged = await api.runtime.tasks.purge_finished(0.01)
            gone = await client.get(f"/v2/tasks/{tasks[0][0]}")
            labels = await api.runtime.store.reported_labels("general", 10)
            other_model = await api.runtime.store.reported_labels("some-site", 10)
            limited = await api.runtime.store.reported_labels("general", 1)
    assert [r.json()["labelled"] for r in (wrong, right, unlabelled)] == [True, True, False]
    assert wrong.json()["refunded"] and not right.json()["refunded"] and unlabelled.json()["refunded"]
    assert purged == 4 and gone.status_code == 404
    assert [(image, text) for image, text in labels] == [
        (base64.b64decode(tasks[1][1]), "CD34"), (base64.b64decode(tasks[0][1]), "AB13"),
    ]
    assert other_model == [] and len(limited) == 1


async def test_old_reports_age_out_but_never_inside_the_share_period(api_factory) -> None:  # type: ignore[no-untyped-def]
    """Protects retention's rule for reports: purged after CRACKER_REPORT_RETENTION_S, but not
    while the refund share still counts them (else a farmer's refunds would be forgotten).
    On a clock the test moves: with the wall clock, a loaded machine took more than the 0.5 s
    share period between the report and the first purge (one CI run in many)."""
    clock = ManualClock()
    async with api_factory(report_refund_share=1.0, report_share_period_s=0.5, clock=clock) as api:
        async with await api.client_for("1.00") as client:
            (task_id,) = await completed_turnstiles(client, 1)
            assert (await client.post(f"/v2/tasks/{task_id}/report", json={"correct": False})).status_code == 200
            kept = await api.runtime.reports.purge(0.01)  # the share period (0.5 s) still counts it
            clock.advance(0.6)
            purged = await api.runtime.reports.purge(0.01)
            forever = await api.runtime.reports.purge(0)
        await assert_books_balance(api.runtime.store)
    assert (kept, purged, forever) == (0, 1, 0)


async def test_the_audit_catches_a_refund_without_a_capture(api_factory) -> None:  # type: ignore[no-untyped-def]
    """Protects the audit's new checks: a refund of a task that was never captured is counted."""
    async with api_factory(in_process_workers=False) as api:
        account_id, key = await api.account("1.00")
        async with api.client(key) as client:
            task_id = (await client.post("/v2/tasks/turnstile", json=TURNSTILE)).json()["task_id"]
        await api.runtime.store.write(lambda tx: tx.refund(account_id, task_id, 9, 0.0))
        found = await api.runtime.store.read(audit.audit_ledger)
    assert (found.refunded_not_captured, found.refund_over_capture, found.refunded_twice) == (1, 1, 0)


async def test_the_report_route_is_in_openapi(api: Api) -> None:
    """Protects generated clients: the route, its body, its answer and its refusals are described."""
    async with api.client() as client:
        spec = (await client.get("/openapi.json")).json()
    operation = spec["paths"]["/v2/tasks/{task_id}/report"]["post"]
    assert operation["operationId"] == "report_task"
    assert {"200", "404", "409", "422"} <= set(operation["responses"])
    assert "already_reported" in operation["responses"]["409"]["description"]
    schemas = spec["components"]["schemas"]
    assert set(schemas["ReportRequest"]["properties"]) == {"correct", "expected"}
    assert {"refunded", "refund", "refund_refused", "balance"} <= set(schemas["ReportModel"]["properties"])
