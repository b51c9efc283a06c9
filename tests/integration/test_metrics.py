"""GET /metrics: the per-type health series in Prometheus text format."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import TURNSTILE_FAIL, TURNSTILE_PASS, Api, wait_terminal


async def test_metrics_per_type(api_factory) -> None:  # type: ignore[no-untyped-def]
    async with api_factory() as api:
        async with await api.client_for() as client:
            for key in (TURNSTILE_PASS, TURNSTILE_FAIL):
                created = (await client.post("/v2/tasks/turnstile",
                                             json={"url": "https://a.example", "site_key": key})).json()
                await wait_terminal(client, created["task_id"])
            response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    # The create and completion paths count through cached children (metrics.ByType): the series are the same.
    assert samples[("cracker_tasks_created_total", (("type", "turnstile"),))] == 2
    assert samples[("cracker_tasks_completed_total", (("type", "turnstile"),))] == 1
    assert samples[("cracker_tasks_rejected_total", (("code", "challenge_error"), ("type", "turnstile")))] == 1
    assert samples[("cracker_solve_seconds_count", (("type", "turnstile"),))] == 2
    assert samples[("cracker_queue_depth", (("status", "pending"), ("type", "turnstile")))] == 0
    assert samples[("cracker_workers_available", (("type", "turnstile"),))] > 0
    assert samples[("cracker_workers_available", (("type", "cf-clearance"),))] == 0


async def test_metrics_need_no_key(api: Api) -> None:
    async with api.client() as client:
        assert (await client.get("/metrics")).status_code == 200
