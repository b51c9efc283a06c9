"""The web dashboard, /docs and /redoc in a real browser (Debian's Chromium, driven by Playwright)
against the real server, on SQLite and on PostgreSQL.

Screenshots of every main page land in ``test-artifacts/dashboard/`` (gitignored) for a person to look
at; the README shows the copies under docs/images/. Every page a test opened through the ``pages``
fixture is shot again on teardown, pass or fail (``<test>-<n>.png``), so a failure leaves a picture of
what the browser showed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from cracker.store import dashboard as dashboard_sql
from cracker.store import open_store
from tests.conftest import TURNSTILE_PASS, LiveServer, fresh_postgres_database, started_server
from tests.timing import within

CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).parent / "dashboard_node" / "node_modules" / "axe-core" / "axe.min.js"
ARTIFACTS = Path(__file__).parents[2] / "test-artifacts" / "dashboard"
TURNSTILE = {"url": "https://example.com", "site_key": TURNSTILE_PASS}
PHONE = {"width": 390, "height": 844}

sync_api = pytest.importorskip("playwright.sync_api")


def _missing(what: str) -> None:
    message = f"{what} is missing (the dashboard's browser tests need it; .ci/run and scripts/test.sh install it)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        _missing(str(CHROMIUM))
    with sync_api.sync_playwright() as playwright:
        # Debian's Chromium: Playwright's own browser downloads are never used.
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    tmp = tmp_path_factory.mktemp(f"dashboard-{request.param}")
    if request.param == "sqlite":
        with started_server(tmp) as live:
            yield live
        return
    # Playwright's sync API keeps an event loop in this thread, where asyncio.run (which makes and
    # drops the database) may not run: both ends of the fixture go to a thread of their own.
    database = fresh_postgres_database()
    with ThreadPoolExecutor(1) as thread:
        url = thread.submit(database.__enter__).result()
        try:
            with started_server(tmp, CRACKER_DATABASE_URL=url) as live:
                yield live
        finally:
            thread.submit(database.__exit__, None, None, None).result()


class Pages:
    """The browser contexts a test opens. On teardown, whether the test passed or failed, each page
    still open is saved as a screenshot in the artifacts directory, then its context is closed."""

    def __init__(self, browser: Any, server: LiveServer, test_name: str) -> None:
        self._browser = browser
        self._server = server
        self._name = re.sub(r"[^\w.-]+", "_", test_name).strip("_")
        self._contexts: list[Any] = []

    def new(self, **context_args: Any) -> Any:
        context = self._browser.new_context(base_url=self._server.base_url, **context_args)
        self._contexts.append(context)
        return context.new_page()

    def signed_in(self, key: str, **context_args: Any) -> Any:
        page = self.new(**context_args)
        page.goto("/dashboard/login")
        page.get_by_label("API key").fill(key)
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(re.compile(r"/dashboard/(account|operator)$"))
        return page

    def close(self) -> None:
        shot = 0
        for context in self._contexts:
            for page in context.pages:
                shot += 1
                # A page that cannot be drawn (crashed, say) must not hide the test's own outcome.
                with contextlib.suppress(Exception):
                    _shot(page, f"{self._name}-{shot}", full_page=False)
            context.close()


@pytest.fixture
def pages(request: pytest.FixtureRequest, browser: Any, server: LiveServer) -> Iterator[Pages]:
    opened = Pages(browser, server, request.node.name)
    yield opened
    opened.close()


def _admin_key(server: LiveServer) -> str:
    account_id, _ = server.new_account("0")
    created = server.cli("keys", "create", account_id, "--scope", "admin", "--json")
    assert created.returncode == 0, created.stderr
    return str(json.loads(created.stdout)["api_key"])


def _shot(page: Any, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def _write_queue_samples(server: LiveServer, slot: float, depths: dict[tuple[str, str], int]) -> None:
    """Queue samples as the sampler writes them, straight into the server's database (in a thread:
    Playwright's loop holds this one)."""

    async def write() -> None:
        store = open_store(server.env["CRACKER_DATABASE_URL"])
        try:
            await store.write(lambda tx: dashboard_sql.insert_queue_samples(tx, slot, depths))
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, write()).result()


def _balance(server: LiveServer, key: str) -> str:
    response = httpx.get(f"{server.base_url}/v2/balance", headers={"x-solvium-auth": key})
    assert response.status_code == 200, response.text
    return str(response.json()["balance"])


def test_a_client_and_an_operator_work_the_dashboard_end_to_end(pages: Pages, server: LiveServer) -> None:
    """The issue's whole flow, per store: sign in with a key; create a key (shown once) and submit a
    task with it through the API while the task list is open, and see the row turn completed
    without a reload; open the task; revoke the key and see the API refuse it; reveal and rotate
    the webhook secret (the API then signs with the new one); export the ledger; an operator tops
    the account up with a reason and the account sees its balance grow (and the reason in its
    ledger); signing out ends the session (its cookie no longer opens a page)."""
    account_id, key = server.new_account("2.00")
    page = pages.signed_in(key)
    assert page.locator("#balance-available").inner_text() == "2.0000 USD"
    _shot(page, "account")

    page.goto("/dashboard/keys")
    page.get_by_label("Scope").select_option("client")
    page.get_by_role("button", name="Create key").click()
    new_key = page.locator("#new-key").input_value()
    assert new_key.startswith("ck_") and new_key != key
    _shot(page, "keys")
    page.goto("/dashboard/keys")
    assert page.locator("#new-key").count() == 0  # shown once

    page.goto("/dashboard/tasks")
    created = httpx.post(f"{server.base_url}/v2/tasks/turnstile", json=TURNSTILE, headers={"x-solvium-auth": new_key})
    assert created.status_code == 201, created.text
    task_id = created.json()["task_id"]
    row = page.locator(f'tr[data-id="{task_id}"]')
    row.locator(".status.completed").wait_for(timeout=within(15) * 1000)  # the page polled; no reload
    _shot(page, "tasks")
    row.get_by_role("link").click()
    page.wait_for_url(f"**/dashboard/tasks/{task_id}")
    assert page.locator("#task-status").inner_text() == "completed"
    assert '"status": "completed"' in page.locator("pre.code").inner_text()
    _shot(page, "task")

    page.goto("/dashboard/keys")
    new_prefix = new_key[:10]
    page.get_by_role("button", name=f"Revoke key {new_prefix}").click()
    page.wait_for_url("**/dashboard/keys")
    refused = httpx.get(f"{server.base_url}/v2/balance", headers={"x-solvium-auth": new_key})
    assert refused.status_code == 401, refused.text

    page.goto("/dashboard/webhook")
    page.get_by_role("button", name="Reveal secret").click()
    first_secret = page.locator("#secret").input_value()
    page.get_by_role("button", name="Rotate secret").click()
    rotated = page.locator("#secret").input_value()
    assert rotated and rotated != first_secret
    api_secret = httpx.get(f"{server.base_url}/v2/webhooks/secret", headers={"x-solvium-auth": key}).json()
    assert api_secret["secret"] == rotated
    _shot(page, "webhook")

    operator = pages.signed_in(_admin_key(server))
    operator.goto(f"/dashboard/operator?q={account_id}")
    account_row = operator.locator(f'tr[data-account="{account_id}"]')
    account_row.get_by_label("Amount in USD").fill("1.5")
    account_row.get_by_label("Reason").fill("goodwill for ticket 42")
    account_row.get_by_role("button", name="Top up").click()
    assert "Added 1.5000 USD" in operator.locator("#notice").inner_text()
    hour = time.time() // 3600 * 3600
    _write_queue_samples(server, hour, {("queue-demo", "pending"): 7, ("queue-demo", "running"): 3})
    operator.goto("/dashboard/operator")
    bars = operator.locator("figure:has(#op-queued-t) rect title").all_text_contents()
    assert any(bar.startswith("queue-demo ") and bar.endswith(": 7") for bar in bars), bars
    assert "queue-demo" in operator.locator("figure:has(#op-queued-t) figcaption").inner_text()
    assert operator.locator("figure:has(#op-running-t) rect").count() >= 1
    _shot(operator, "operator")

    assert _balance(server, key) == "3.4991"
    page.goto("/dashboard/account")
    assert page.locator("#balance-available").inner_text() == "3.4991 USD"
    page.goto("/dashboard/ledger?kind=topup")
    assert "goodwill for ticket 42" in page.locator("#ledger").inner_text()
    _shot(page, "ledger")
    csv = page.request.get(f"{server.base_url}/dashboard/ledger.csv")
    assert csv.status == 200 and csv.headers["content-type"].startswith("text/csv")
    lines = csv.text().splitlines()
    assert lines[0].startswith("id,time_utc,kind") and any("goodwill for ticket 42" in line for line in lines)

    cookie = next(c["value"] for c in page.context.cookies() if c["name"] == "cracker_session")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/dashboard/login")
    stale = httpx.get(f"{server.base_url}/dashboard/account", cookies={"cracker_session": cookie})
    assert stale.status_code == 303 and stale.headers["location"] == "/dashboard/login"


def test_an_account_sees_only_its_own_and_no_operator_view(pages: Pages, server: LiveServer) -> None:
    """A client session cannot open another account's task (the same page as a missing one), does
    not see it in its list or the live JSON, and is refused the operator view and its forms."""
    _, owner_key = server.new_account("1.00")
    created = httpx.post(f"{server.base_url}/v2/tasks/turnstile", json=TURNSTILE, headers={"x-solvium-auth": owner_key})
    task_id = created.json()["task_id"]
    victim_id, victim_key = server.new_account("1.00")
    _, other_key = server.new_account("1.00")
    page = pages.signed_in(other_key)
    response = page.goto(f"/dashboard/tasks/{task_id}")
    assert response is not None and response.status == 404
    assert task_id not in page.content()
    listed = page.request.get(f"{server.base_url}/dashboard/api/tasks").json()
    assert task_id not in json.dumps(listed)
    response = page.goto("/dashboard/operator")
    assert response is not None and response.status == 403
    csrf = _csrf_of(page, "/dashboard/keys")
    topup = page.request.post(f"{server.base_url}/dashboard/operator/topup", form={
        "csrf": csrf, "account_id": victim_id, "amount": "100", "reason": "mine now"})
    assert topup.status == 403
    assert _balance(server, victim_key) == "1.0000"


def _csrf_of(page: Any, path: str) -> str:
    page.goto(path)
    return str(page.locator('input[name="csrf"]').first.input_value())


def test_a_form_without_its_csrf_token_is_refused(pages: Pages, server: LiveServer) -> None:
    """With a valid session cookie, a POST that lacks (or forges) the session's CSRF token does
    nothing: creating a key, rotating the secret, signing out; and a sign-in form posted without
    its own token is refused too."""
    account_id, key = server.new_account("1.00")
    page = pages.signed_in(key)
    before = server.cli("keys", "list", account_id, "--json").stdout
    for path, form in (("/dashboard/keys", {"scope": "client"}), ("/dashboard/webhook/rotate", {}),
                       ("/dashboard/logout", {})):
        for token in (None, "forged"):
            sent = form if token is None else {**form, "csrf": token}
            response = page.request.post(f"{server.base_url}{path}", form=sent or {"x": "1"}, max_redirects=0)
            assert response.status == 403, (path, token, response.status)
    assert server.cli("keys", "list", account_id, "--json").stdout == before
    assert page.goto("/dashboard/account").url.endswith("/dashboard/account")  # still signed in
    signin = httpx.post(f"{server.base_url}/dashboard/login", data={"api_key": key})
    assert signin.status_code == 403 and "cracker_session" not in signin.cookies


# The pages are the same whichever store is below: one run is enough.
@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_docs_and_redoc_render_offline_from_the_servers_own_files(pages: Pages, server: LiveServer) -> None:
    """/docs draws Swagger UI (its operations listed) and /redoc draws ReDoc (the API's title and
    its operations in the menu) with every request to the server's own origin: blocking every
    other origin changes nothing, so both work without internet."""
    page = pages.new()
    requested: list[str] = []

    def only_own_origin(route: Any) -> None:
        requested.append(route.request.url)
        if route.request.url.startswith(server.base_url):
            route.continue_()
        else:
            route.abort()

    page.route("**/*", only_own_origin)
    page.goto("/docs")
    page.locator(".swagger-ui .opblock").first.wait_for(timeout=within(15) * 1000)
    assert page.locator(".swagger-ui .info .title").inner_text().startswith("Cracker")
    _shot(page, "docs")
    page.goto("/redoc")
    page.locator(".api-content h1").first.wait_for(timeout=within(15) * 1000)
    assert page.locator(".api-content h1").first.inner_text().startswith("Cracker")
    assert page.locator(".menu-content li[data-item-id]").count() > 10  # the operations, listed in the menu
    _shot(page, "redoc", full_page=False)
    foreign = [url for url in requested if not url.startswith(server.base_url)]
    assert not foreign, foreign
    assert any(url.endswith("swagger-ui-bundle.js") for url in requested)
    assert any(url.endswith("redoc.standalone.js") for url in requested)


# The page is the same whichever store is below: one run is enough.
@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_pages_pass_the_accessibility_scan_and_fit_a_phone(pages: Pages, server: LiveServer) -> None:
    """axe-core finds no serious or critical violation on any page (client and operator), every
    page is usable at a phone's width (nothing wider than the screen but scrolling tables), and the
    keyboard reaches the skip link first and sees a focus ring."""
    if not AXE.exists():
        _missing(str(AXE))
    _, key = server.new_account("1.00")
    httpx.post(f"{server.base_url}/v2/tasks/turnstile", json=TURNSTILE, headers={"x-solvium-auth": key})
    script = AXE.read_text()
    # bypass_csp: the pages' policy rightly refuses the injected scanner, an inline script.
    client = pages.signed_in(key, viewport=PHONE, bypass_csp=True)
    operator = pages.signed_in(_admin_key(server), viewport=PHONE, bypass_csp=True)
    pages = [(client, p) for p in ("/dashboard/account", "/dashboard/tasks", "/dashboard/ledger", "/dashboard/keys",
                                   "/dashboard/webhook")]
    pages += [(operator, "/dashboard/operator"), (client, "/dashboard/login")]
    for page, path in pages:
        page.goto(path)
        page.add_script_tag(content=script)
        result = page.evaluate("async () => (await axe.run(document)).violations"
                               ".map(v => ({id: v.id, impact: v.impact, nodes: v.nodes.length}))")
        serious = [v for v in result if v["impact"] in ("serious", "critical")]
        assert not serious, (path, serious)
        overflow = page.evaluate("() => document.body.scrollWidth - window.innerWidth")
        assert overflow <= 1, (path, overflow)
    client.goto("/dashboard/account")
    _shot(client, "account-phone")
    client.keyboard.press("Tab")
    assert client.evaluate("() => document.activeElement.textContent") == "Skip to content"
    outline = client.evaluate("() => getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("none", "")


def _http_session(server: LiveServer, key: str) -> httpx.Client:
    client = httpx.Client(base_url=server.base_url)
    token = re.search(r'name="csrf" value="([^"]+)"', client.get("/dashboard/login").text)
    assert token is not None
    assert client.post("/dashboard/login", data={"csrf": token.group(1), "api_key": key}).status_code == 303
    return client


def _add_accounts(server: LiveServer, count: int) -> None:
    async def write() -> None:
        store = open_store(server.env["CRACKER_DATABASE_URL"])
        at = time.time()
        try:
            await store.write(lambda tx: [tx.insert_account(f"paged-{i:04d}", "paged", at) for i in range(count)])
        finally:
            await store.close()

    with ThreadPoolExecutor(1) as thread:
        thread.submit(asyncio.run, write()).result()


# The pages are the same whichever store is below (the keyset is checked on both in the store's
# contract tests): one run is enough.
@pytest.mark.parametrize("server", ["sqlite"], indirect=True)
def test_task_list_and_accounts_page_past_the_newest_200(server: LiveServer) -> None:
    """Beyond its 200 newest rows the task list links to the older ones, filters kept, and the pages
    together hold each of the account's tasks once (its live JSON twin serves the same page); a
    malformed cursor shows the first page; the operator's accounts list pages the same way."""
    _, key = server.new_account("1.00")
    ids: list[str] = []
    for _ in range(3):
        batch = httpx.post(f"{server.base_url}/v2/tasks/batch", headers={"x-solvium-auth": key},
                           json={"tasks": [{"type": "turnstile", **TURNSTILE}] * 100}, timeout=30)
        assert batch.status_code == 200, batch.text
        ids += [item["task"]["task_id"] for item in batch.json()["results"]]
    row_id = re.compile(r'<tr data-id="([^"]+)"')
    with contextlib.closing(_http_session(server, key)) as client:
        first = client.get("/dashboard/tasks", params={"type": "turnstile"})
        older = re.search(r'href="(\?[^"]+)" id="older-tasks"', first.text)
        assert older is not None and "type=turnstile" in older.group(1)
        second = client.get("/dashboard/tasks" + older.group(1).replace("&amp;", "&"))
        assert 'id="older-tasks"' not in second.text and "Newest tasks" in second.text
        pages = [row_id.findall(first.text), row_id.findall(second.text)]
        assert [len(p) for p in pages] == [200, 100]
        assert sorted(pages[0] + pages[1]) == sorted(ids)
        live = client.get("/dashboard/api/tasks" + older.group(1).replace("&amp;", "&")).json()["tasks"]
        assert [t["id"] for t in live] == pages[1]
        for bad in ({"before_at": "nan", "before_id": "x"}, {"before_at": "soon", "before_id": "x"}):
            assert row_id.findall(client.get("/dashboard/tasks", params=bad).text) == pages[0]

    _add_accounts(server, 210)
    with contextlib.closing(_http_session(server, _admin_key(server))) as client:
        first = client.get("/dashboard/operator")
        older = re.search(r'href="(\?[^"]+)" id="older-accounts"', first.text)
        assert older is not None
        second = client.get("/dashboard/operator" + older.group(1).replace("&amp;", "&"))
        account_id = re.compile(r'<tr data-account="([^"]+)"')
        listed = account_id.findall(first.text) + account_id.findall(second.text)
        assert len(listed) == len(set(listed)) and {f"paged-{i:04d}" for i in range(210)} <= set(listed)


def test_failed_sign_ins_are_rate_limited_per_address(tmp_path: Path) -> None:
    """After the burst of failed sign-ins an address is refused (429 with Retry-After) even with a
    right key, until its bucket refills; successful sign-ins cost nothing."""
    with started_server(tmp_path, CRACKER_DASHBOARD_SIGNIN_BURST="3",
                        CRACKER_DASHBOARD_SIGNIN_RATE_PER_S="0.01") as live:
        _, key = live.new_account("1.00")
        with httpx.Client(base_url=live.base_url) as client:

            def attempt(api_key: str) -> httpx.Response:
                form = client.get("/dashboard/login").text
                token = re.search(r'name="csrf" value="([^"]+)"', form)
                assert token is not None
                return client.post("/dashboard/login", data={"csrf": token.group(1), "api_key": api_key})

            assert attempt(key).status_code == 303
            statuses = [attempt("ck_wrong").status_code for _ in range(3)]
            assert statuses == [401, 401, 401]
            refused = attempt(key)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
