"""``Solvium``: the client, async methods with ``_sync`` twins over one shared core."""

from __future__ import annotations

import asyncio
import time
from types import TracebackType
from typing import Any, Self

import httpx

from cracker.sdk import _flows as flows
from cracker.sdk._core import Call, Flow, RetryPolicy, Sleep
from cracker.sdk._errors import SolviumError
from cracker.sdk._report import Report
from cracker.sdk._task import Task

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_SOLVE_TIMEOUT_S = 180.0
_VERSION = "0.1.0"


class Solvium:
    """Client of the v2 API (and a drop-in for the 1.x SDK's method names).

    One ``httpx.Client`` and one ``httpx.AsyncClient`` are made on first use and reused, so repeated
    calls share their connection pools; close them with ``close()`` / ``aclose()`` or a ``with`` /
    ``async with`` block. The ``_sync`` methods need no event loop, so they also work inside a
    program that already runs one.
    """

    def __init__(
        self,
        api_key: str,
        base_url: str = DEFAULT_BASE_URL,
        *,
        timeout: float = 30.0,
        max_retries: int = 4,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"x-solvium-auth": api_key, "User-Agent": f"cracker-sdk/{_VERSION}"}
        self._timeout = timeout
        self._policy = RetryPolicy(max_retries=max_retries)
        self._transport = transport
        self._async_transport = async_transport
        self._client: httpx.Client | None = None
        self._async_client: httpx.AsyncClient | None = None

    # --- lifecycle ---

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def aclose(self) -> None:
        if self._async_client is not None:
            await self._async_client.aclose()
            self._async_client = None
        self.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # --- the two drivers of the shared flows ---

    def _run_sync(self, flow: Flow) -> Any:
        if self._client is None:
            self._client = httpx.Client(
                base_url=self.base_url, headers=self._headers, timeout=self._timeout, transport=self._transport
            )
        client = self._client
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    response: httpx.Response | None = client.send(self._build(client, step))
                except httpx.TransportError:
                    response = None  # the flow decides whether to retry
                step = flow.send(response)
        except StopIteration as stop:
            return stop.value

    async def _run_async(self, flow: Flow) -> Any:
        if self._async_client is None:
            self._async_client = httpx.AsyncClient(
                base_url=self.base_url, headers=self._headers, timeout=self._timeout,
                transport=self._async_transport,
            )
        client = self._async_client
        try:
            step = next(flow)
            while True:
                if isinstance(step, Sleep):
                    await asyncio.sleep(step.seconds)
                    step = flow.send(None)
                    continue
                try:
                    response: httpx.Response | None = await client.send(self._build(client, step))
                except httpx.TransportError:
                    response = None
                step = flow.send(response)
        except StopIteration as stop:
            return stop.value

    def _build(self, client: httpx.Client | httpx.AsyncClient, call: Call) -> httpx.Request:
        timeout = httpx.Timeout(call.timeout) if call.timeout is not None else httpx.USE_CLIENT_DEFAULT
        return client.build_request(
            call.method, call.path, json=call.json, params=call.params, headers=call.headers,
            timeout=timeout,
        )

    # --- account and status ---

    async def get_task(self, task_id: str, *, wait: float | None = None) -> Task:
        """The task envelope; ``wait`` (up to 60 s) long-polls until it ends."""
        result: Task = await self._run_async(flows.get_task(task_id, wait, self._policy))
        return result

    def get_task_sync(self, task_id: str, *, wait: float | None = None) -> Task:
        result: Task = self._run_sync(flows.get_task(task_id, wait, self._policy))
        return result

    async def balance(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._run_async(flows.get_json("/v2/balance", self._policy))
        return result

    def balance_sync(self) -> dict[str, Any]:
        result: dict[str, Any] = self._run_sync(flows.get_json("/v2/balance", self._policy))
        return result

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self._run_async(flows.get_json("/v2/health", self._policy))
        return result

    def health_sync(self) -> dict[str, Any]:
        result: dict[str, Any] = self._run_sync(flows.get_json("/v2/health", self._policy))
        return result

    # --- tasks ---

    async def create_task(self, type: str, *, idempotency_key: str | None = None, **fields: Any) -> Task:
        """Create a task and return its pending envelope (retried safely with an Idempotency-Key)."""
        result: Task = await self._run_async(flows.create_task(type, fields, idempotency_key, self._policy))
        return result

    def create_task_sync(self, type: str, *, idempotency_key: str | None = None, **fields: Any) -> Task:
        result: Task = self._run_sync(flows.create_task(type, fields, idempotency_key, self._policy))
        return result

    async def create_tasks(
        self, tasks: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> list[Task | SolviumError]:
        """Create up to 100 tasks in one request (each a dict with its ``type``). Per item, in order:
        its pending Task, or the typed error it got (returned, not raised: the others were created).
        Retried safely as a whole with one Idempotency-Key."""
        result: list[Task | SolviumError] = await self._run_async(
            flows.create_tasks(tasks, idempotency_key, self._policy)
        )
        return result

    def create_tasks_sync(
        self, tasks: list[dict[str, Any]], *, idempotency_key: str | None = None
    ) -> list[Task | SolviumError]:
        result: list[Task | SolviumError] = self._run_sync(flows.create_tasks(tasks, idempotency_key, self._policy))
        return result

    async def solve(
        self, type: str, *, timeout: float = DEFAULT_SOLVE_TIMEOUT_S,
        idempotency_key: str | None = None, **fields: Any,
    ) -> Task:
        """Create a task and wait for it (long-poll). Raises ``TaskRejected`` if it is rejected."""
        result: Task = await self._run_async(flows.solve(type, fields, timeout, idempotency_key, self._policy))
        return result

    def solve_sync(
        self, type: str, *, timeout: float = DEFAULT_SOLVE_TIMEOUT_S,
        idempotency_key: str | None = None, **fields: Any,
    ) -> Task:
        result: Task = self._run_sync(flows.solve(type, fields, timeout, idempotency_key, self._policy))
        return result

    async def wait(self, task: Task | str, *, timeout: float = DEFAULT_SOLVE_TIMEOUT_S) -> Task:
        """Wait for a created task to end (long-poll); raises ``TaskRejected`` if it is rejected."""
        start = task if isinstance(task, Task) else await self.get_task(task)
        result: Task = await self._run_async(flows.wait_for(start, timeout, self._policy))
        return result

    def wait_sync(self, task: Task | str, *, timeout: float = DEFAULT_SOLVE_TIMEOUT_S) -> Task:
        start = task if isinstance(task, Task) else self.get_task_sync(task)
        result: Task = self._run_sync(flows.wait_for(start, timeout, self._policy))
        return result

    async def cancel(self, task_id: str) -> Task:
        result: Task = await self._run_async(flows.cancel(task_id, self._policy))
        return result

    def cancel_sync(self, task_id: str) -> Task:
        result: Task = self._run_sync(flows.cancel(task_id, self._policy))
        return result

    # --- reports of answers ---

    async def report_incorrect(self, task_id: str, expected: str | None = None) -> Report:
        """Say a completed task's answer was wrong: refunded within the operator's share (see
        ``Report.refunded`` / ``refund_refused``). ``expected``: an image's right text, kept to
        fine-tune the model. Once per task; not retried (a second report is ``AlreadyReported``)."""
        result: Report = await self._run_async(flows.report(task_id, False, expected, self._policy))
        return result

    def report_incorrect_sync(self, task_id: str, expected: str | None = None) -> Report:
        result: Report = self._run_sync(flows.report(task_id, False, expected, self._policy))
        return result

    async def report_correct(self, task_id: str) -> Report:
        """Say a completed task's answer was accepted (an image's answer becomes a labelled sample)."""
        result: Report = await self._run_async(flows.report(task_id, True, None, self._policy))
        return result

    def report_correct_sync(self, task_id: str) -> Report:
        result: Report = self._run_sync(flows.report(task_id, True, None, self._policy))
        return result

    # --- one method per task type (each solves and returns the completed envelope) ---

    async def altcha(self, challenge: dict[str, Any], **options: Any) -> Task:
        return await self.solve("altcha", challenge=challenge, **options)

    def altcha_sync(self, challenge: dict[str, Any], **options: Any) -> Task:
        return self.solve_sync("altcha", challenge=challenge, **options)

    async def cap(self, challenge: dict[str, Any], **options: Any) -> Task:
        return await self.solve("cap", challenge=challenge, **options)

    def cap_sync(self, challenge: dict[str, Any], **options: Any) -> Task:
        return self.solve_sync("cap", challenge=challenge, **options)

    async def mcaptcha(self, config: dict[str, Any], site_key: str, **options: Any) -> Task:
        return await self.solve("mcaptcha", config=config, site_key=site_key, **options)

    def mcaptcha_sync(self, config: dict[str, Any], site_key: str, **options: Any) -> Task:
        return self.solve_sync("mcaptcha", config=config, site_key=site_key, **options)

    async def friendly_captcha(self, puzzle: str, **options: Any) -> Task:
        return await self.solve("friendly-captcha", puzzle=puzzle, **options)

    def friendly_captcha_sync(self, puzzle: str, **options: Any) -> Task:
        return self.solve_sync("friendly-captcha", puzzle=puzzle, **options)

    async def pow_sha256(self, data: str, difficulty: int, **options: Any) -> Task:
        return await self.solve("pow-sha256", data=data, difficulty=difficulty, **options)

    def pow_sha256_sync(self, data: str, difficulty: int, **options: Any) -> Task:
        return self.solve_sync("pow-sha256", data=data, difficulty=difficulty, **options)

    async def image_to_text(self, image_b64: str, *, model: str | None = None, **hints: Any) -> Task:
        """Read a text captcha. ``model``: a named OCR model the operator fine-tuned for this site
        (``GET /v2/offers`` lists them); None reads with the general model."""
        if model is not None:
            hints["model"] = model
        return await self.solve("image-to-text", image_b64=image_b64, **hints)

    def image_to_text_sync(self, image_b64: str, *, model: str | None = None, **hints: Any) -> Task:
        if model is not None:
            hints["model"] = model
        return self.solve_sync("image-to-text", image_b64=image_b64, **hints)

    async def hcaptcha(self, site_key: str, url: str, **options: Any) -> Task:
        return await self.solve("hcaptcha", site_key=site_key, url=url, **options)

    def hcaptcha_sync(self, site_key: str, url: str, **options: Any) -> Task:
        return self.solve_sync("hcaptcha", site_key=site_key, url=url, **options)

    # --- names shared with the 1.x SDK: the legacy call returns the solution string ---

    async def turnstile(self, sitekey: str | None = None, pageurl: str | None = None, **fields: Any) -> Any:
        """``turnstile(site_key=..., url=...)`` returns the envelope; the 1.x call
        ``turnstile(sitekey, pageurl)`` returns the token string."""
        return await self._run_async(self._typed_or_legacy("turnstile", sitekey, pageurl, fields))

    def turnstile_sync(self, sitekey: str | None = None, pageurl: str | None = None, **fields: Any) -> Any:
        return self._run_sync(self._typed_or_legacy("turnstile", sitekey, pageurl, fields))

    async def recaptcha_v2(self, sitekey: str | None = None, pageurl: str | None = None, **fields: Any) -> Any:
        return await self._run_async(self._typed_or_legacy("recaptcha-v2", sitekey, pageurl, fields))

    def recaptcha_v2_sync(self, sitekey: str | None = None, pageurl: str | None = None, **fields: Any) -> Any:
        return self._run_sync(self._typed_or_legacy("recaptcha-v2", sitekey, pageurl, fields))

    async def recaptcha_v3(self, sitekey: str | None = None, pageurl: str | None = None, **fields: Any) -> Any:
        return await self._run_async(self._typed_or_legacy("recaptcha-v3", sitekey, pageurl, fields))

    def recaptcha_v3_sync(self, sitekey: str | None = None, pageurl: str | None = None, **fields: Any) -> Any:
        return self._run_sync(self._typed_or_legacy("recaptcha-v3", sitekey, pageurl, fields))

    async def noname(self, sitekey: str, pageurl: str) -> str:
        """1.x name of an hCaptcha task: returns the token string."""
        result: str = await self._run_async(self._typed_or_legacy("hcaptcha", sitekey, pageurl, {}))
        return result

    def noname_sync(self, sitekey: str, pageurl: str) -> str:
        result: str = self._run_sync(self._typed_or_legacy("hcaptcha", sitekey, pageurl, {}))
        return result

    async def cf_clearance(self, pageurl: str | None = None, body_b64: str | None = None,
                           proxy: str | None = None, **fields: Any) -> Any:
        """``cf_clearance(url=..., challenge_body_b64=..., proxy=...)`` returns the envelope; the 1.x
        call ``cf_clearance(pageurl, body_b64, proxy)`` returns the solution string."""
        return await self._run_async(self._cf_clearance(pageurl, body_b64, proxy, fields))

    def cf_clearance_sync(self, pageurl: str | None = None, body_b64: str | None = None,
                          proxy: str | None = None, **fields: Any) -> Any:
        return self._run_sync(self._cf_clearance(pageurl, body_b64, proxy, fields))

    async def vercel(self, challenge_token: str) -> str:
        """1.x call: returns the solution string."""
        result: str = await self._run_async(self._legacy("vercel", {"challenge_token": challenge_token}))
        return result

    def vercel_sync(self, challenge_token: str) -> str:
        result: str = self._run_sync(self._legacy("vercel", {"challenge_token": challenge_token}))
        return result

    def _legacy(self, task_type: str, fields: dict[str, Any]) -> Flow:
        return flows.solve_token(task_type, fields, DEFAULT_SOLVE_TIMEOUT_S, self._policy)

    def _typed_or_legacy(self, task_type: str, sitekey: str | None, pageurl: str | None,
                         fields: dict[str, Any]) -> Flow:
        if sitekey is not None or pageurl is not None:
            legacy = {"site_key": sitekey, "url": pageurl, **fields}
            return self._legacy(task_type, legacy)
        timeout = float(fields.pop("timeout", DEFAULT_SOLVE_TIMEOUT_S))
        return flows.solve(task_type, fields, timeout, fields.pop("idempotency_key", None), self._policy)

    def _cf_clearance(self, pageurl: str | None, body_b64: str | None, proxy: str | None,
                      fields: dict[str, Any]) -> Flow:
        if pageurl is not None or body_b64 is not None:
            return self._legacy("cf-clearance", {"url": pageurl, "challenge_body_b64": body_b64, "proxy": proxy})
        if proxy is not None:
            fields["proxy"] = proxy
        return self._typed_or_legacy("cf-clearance", None, None, fields)
