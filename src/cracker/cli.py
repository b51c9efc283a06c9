"""The `cracker` command line: serve, worker, migrate, accounts, keys, offers, solve."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import signal
import socket
from collections.abc import Awaitable, Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from cracker import __version__, cli_solve
from cracker.cli_ocr_models import ocr_models_app
from cracker.config import Settings
from cracker.domain.accounts import Scope
from cracker.domain.clock import rfc3339
from cracker.domain.errors import CrackerError
from cracker.domain.money import MoneyError, format_usd, parse_usd
from cracker.domain.workers import PoolGrant, allowed_pool_types
from cracker.logs import configure_logging
from cracker.service.accounts import AccountService, IssuedKey
from cracker.service.offers import OfferService
from cracker.service.pools import PoolPolicyService
from cracker.store import Store, open_store
from cracker.store.migrate import migrate as run_migrations

app = typer.Typer(help="Cracker: a self-hosted captcha-task service.", no_args_is_help=True)
accounts_app = typer.Typer(help="Manage accounts.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
offers_app = typer.Typer(help="Manage the price list.", no_args_is_help=True)
pools_app = typer.Typer(help="Which task types an account's worker pools may serve.", no_args_is_help=True)
app.add_typer(accounts_app, name="accounts")
app.add_typer(keys_app, name="keys")
app.add_typer(offers_app, name="offers")
app.add_typer(pools_app, name="pools")
app.add_typer(ocr_models_app, name="ocr-models")
app.command("solve", context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(cli_solve.solve)

# soft_wrap: keys and commands must stay on one line, to be copied whole.
console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)
log = logging.getLogger("cracker.worker")
serve_log = logging.getLogger("cracker.serve")


class LogFormatChoice(StrEnum):
    """``--log-format`` (Settings.log_format is the same choice from the environment)."""

    JSON = "json"
    TEXT = "text"


T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    """A one-line error for a problem the operator can fix; the caller raises what this returns."""
    err_console.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(1)


def _migrate(url: str) -> None:
    """Migrate, or exit with one line that names the database and what to check."""
    try:
        run_migrations(url)
    except ValueError as exc:  # a URL Cracker cannot use
        raise _fail(f"{exc}; set CRACKER_DATABASE_URL") from None
    except CrackerError as exc:
        raise _fail(f"{exc.message}; check CRACKER_DATABASE_URL and that the database is running") from None


def _listen(host: str, port: int) -> socket.socket:
    """Bind the server's socket before anything else, so a port in use is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, backlog=2048)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _fail(f"port {port} on {host} is already in use: stop what listens there, or pass --port") from None
        raise _fail(f"cannot listen on {host}:{port} ({exc.strerror or exc}): pass another --host or --port") from None


@contextlib.contextmanager
def _needs_training_extra() -> Iterator[None]:
    """Training and generated images need packages a plain install leaves out: say which, and how."""
    try:
        yield
    except ModuleNotFoundError as exc:
        missing = exc.name or str(exc)
        hint = "pip install 'cracker[ocr-train]'"
        raise _fail(f"this command needs {missing!r}, from the ocr-train extra: {hint}") from None


def _run(make: Callable[[Store], Awaitable[T]]) -> T:
    """Migrate, then run one store operation to completion."""
    settings = Settings()
    _migrate(settings.database_url)

    async def main() -> T:
        store = open_store(settings.database_url)
        try:
            return await make(store)
        finally:
            await store.close()

    try:
        return asyncio.run(main())
    except CrackerError as exc:
        err_console.print(f"[red]error:[/red] {exc.message}")
        raise typer.Exit(1) from None


def _amount(text: str) -> int:
    try:
        return parse_usd(text)
    except MoneyError as exc:
        raise typer.BadParameter(str(exc)) from None


def _print_key(issued: IssuedKey, as_json: bool, *, balance: int | None = None) -> None:
    if as_json:
        print(json.dumps({"account_id": issued.account_id, "api_key": issued.api_key}))
        return
    console.print(f"account_id: [bold]{issued.account_id}[/bold]")
    if balance is not None:
        console.print(f"balance:    {format_usd(balance)} USD")
    console.print(f"scope:      {issued.scope.value}")
    console.print(f"api_key:    [bold green]{issued.api_key}[/bold green]  (shown once; stored only as a hash)")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
    log_level: Annotated[str, typer.Option(help="Log level: debug, info, warning, error")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request (one access line each)")] = True,
    log_format: Annotated[
        LogFormatChoice | None,
        typer.Option(help="json (one object per line) or text; default: CRACKER_LOG_FORMAT, else json"),
    ] = None,
    demo: Annotated[
        bool, typer.Option("--demo", help="Ensure a 'demo' account (10.00 USD when new) and print a fresh key")
    ] = False,
    ssl_certfile: Annotated[
        Path | None, typer.Option(help="Serve HTTPS with this PEM certificate (chain); needs --ssl-keyfile. "
                                  "2captcha's published client speaks HTTPS only (docs/protocols.md)")
    ] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="The certificate's PEM private key")] = None,
) -> None:
    """Migrate the database and run the API with the built-in solvers in-process."""
    import uvicorn

    from cracker.api.app import create_app
    from cracker.http_protocol import CoalescingHttpToolsProtocol

    if (ssl_certfile is None) != (ssl_keyfile is None):
        console.print("--ssl-certfile and --ssl-keyfile go together")
        raise typer.Exit(2)
    for path in (ssl_certfile, ssl_keyfile):
        if path is not None and not path.is_file():
            console.print(f"no such file: {path}")
            raise typer.Exit(2)
    scheme = "https" if ssl_certfile else "http"
    settings = Settings()
    try:
        configure_logging(log_format.value if log_format else settings.log_format, log_level)
    except ValueError:
        raise typer.BadParameter(f"unknown level {log_level!r}", param_hint="--log-level") from None
    listener = _listen(host, port)
    _migrate(settings.database_url)
    if demo:
        issued, created = _run(lambda store: AccountService(store).demo_key("demo", parse_usd("10.00")))
        console.print(f"demo account {'created with 10.00 USD' if created else 'exists'}; new key below")
        _print_key(issued, False)
        console.print(
            f"try: curl -H 'x-solvium-auth: {issued.api_key}' {scheme}://{host}:{port}/v2/balance"
        )
    serve_log.info("Cracker on %s://%s:%d (database: %s)", scheme, host, port, settings.database_url)
    # log_config=None: uvicorn's loggers keep the handler configure_logging gave the root (JSON
    # lines); its access log is off, as the app writes its own (with request id, account, route).
    config = uvicorn.Config(
        create_app(settings, run_migrations=False, access_log=access_log), host=host, port=port,
        log_level=log_level, log_config=None, proxy_headers=False, server_header=False, access_log=False,
        http=CoalescingHttpToolsProtocol,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None, ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
    )
    server = uvicorn.Server(config)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then raises the signal again under the
    # handlers it found; with Python's defaults that kills the process (-15) or prints a
    # KeyboardInterrupt traceback. A stop that shut down cleanly is a clean exit.
    for stop_signal in (signal.SIGTERM, signal.SIGINT):
        signal.signal(stop_signal, lambda *_: None)
    server.run(sockets=[listener])
    if not server.started:
        raise typer.Exit(3)


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest version."""
    settings = Settings()
    _migrate(settings.database_url)
    console.print("database is at the newest schema")


@app.command()
def worker(
    types: Annotated[
        list[str] | None,
        typer.Option("--types", help="Task types to serve (repeat, or comma-separated); default: all built-in"),
    ] = None,
    concurrency: Annotated[int | None, typer.Option(help="Tasks solved at once (default: CRACKER_WORKER_CONCURRENCY)")]
    = None,
    name: Annotated[str, typer.Option(help="Name shown in the worker registry")] = "worker-process",
    log_format: Annotated[
        LogFormatChoice | None,
        typer.Option(help="json (one object per line) or text; default: CRACKER_LOG_FORMAT, else json"),
    ] = None,
) -> None:
    """Run the built-in solvers as a separate process against the shared database (run `migrate` first)."""
    from cracker.domain.task_types import resolve_type

    settings = Settings()
    configure_logging(log_format.value if log_format else settings.log_format)
    wanted: set[str] = set()
    for item in types or ():
        for raw in item.split(","):
            resolved = resolve_type(raw.strip())
            if resolved is None:
                raise typer.BadParameter(f"unknown task type {raw.strip()!r}", param_hint="--types")
            wanted.add(resolved.name)
    if concurrency is not None and concurrency < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--concurrency")
    run = run_worker(
        settings, types=frozenset(wanted) or None, concurrency=concurrency or settings.worker_concurrency, name=name
    )
    try:
        import uvloop

        uvloop.run(run)
    except ImportError:  # pragma: no cover - uvloop ships with uvicorn[standard]
        asyncio.run(run)


async def run_worker(settings: Settings, *, types: frozenset[str] | None, concurrency: int, name: str) -> None:
    """The body of a `cracker worker` process: the built-in solvers against the shared database.

    Any number of them, on any machine that reaches the database. Each registers in the worker
    registry (so API processes count its types as served), leases tasks with SKIP LOCKED claims,
    heartbeats, and reports outcomes in group-committed batches. It also runs the reaper and
    retention jobs, so that leases of a dead worker come back even while no API process runs.
    SIGTERM or SIGINT: stop leasing, hand the tasks in hand back to the queue, deregister, exit.
    """
    from cracker.runtime import ProcessKind, WorkerSpec, build_runtime

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    spec = WorkerSpec(concurrency=concurrency, name=name, types=types)
    runtime = await build_runtime(settings, ProcessKind.WORKER, worker=spec)
    try:
        for lane in runtime.workers:
            log.info("worker %s serving %s with concurrency %d", lane.owner, ", ".join(lane.types), lane.concurrency)
        await stop.wait()
        log.info("worker %s stopping", ", ".join(lane.owner for lane in runtime.workers))
    finally:
        await runtime.stop()


@accounts_app.command("create")
def accounts_create(
    name: Annotated[str, typer.Option(help="Account name")],
    balance: Annotated[str, typer.Option(help="Opening balance in USD")] = "0",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create an account with a client API key (printed once)."""
    units = _amount(balance)
    issued = _run(lambda store: AccountService(store).create_account(name, units))
    _print_key(issued, as_json, balance=units)


@accounts_app.command("topup")
def accounts_topup(
    account_id: Annotated[str, typer.Argument(help="Account id")],
    amount: Annotated[str, typer.Argument(help="USD to add, e.g. 10.00")],
) -> None:
    """Add funds to an account."""
    units = _amount(amount)
    if units == 0:
        raise typer.BadParameter("amount must be positive")
    balance = _run(lambda store: AccountService(store).top_up(account_id, units))
    console.print(f"balance: {format_usd(balance.available)} USD (held {format_usd(balance.held)})")


@keys_app.command("create")
def keys_create(
    account_id: Annotated[str, typer.Argument(help="Account id")],
    scope: Annotated[Scope, typer.Option(help="What the key may do")] = Scope.CLIENT,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object")] = False,
) -> None:
    """Create another API key for an account."""
    max_keys = Settings().max_api_keys_per_account
    issued = _run(lambda store: AccountService(store, max_keys=max_keys).create_key(account_id, scope))
    _print_key(issued, as_json)


@keys_app.command("list")
def keys_list(
    account_id: Annotated[str, typer.Argument(help="Account id")],
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object per key")] = False,
) -> None:
    """List an account's API keys (their first characters only; revoked ones too)."""
    found = _run(lambda store: AccountService(store).list_keys(account_id))
    if as_json:
        for info in found:
            print(json.dumps({"key_id": info.id, "prefix": info.prefix, "scope": info.scope.value,
                              "created_at": rfc3339(info.created_at),
                              "revoked_at": rfc3339(info.revoked_at) if info.revoked_at is not None else None}))
        return
    table = Table("key_id", "prefix", "scope", "created", "revoked")
    for info in found:
        table.add_row(info.id, info.prefix + "...", info.scope.value, rfc3339(info.created_at),
                      rfc3339(info.revoked_at) if info.revoked_at is not None else "")
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="Key id (from `cracker keys list`)")]) -> None:
    """Revoke an API key: every process refuses it within CRACKER_AUTH_CACHE_S (5 s by default)."""
    info = _run(lambda store: AccountService(store).revoke_key(key_id))
    assert info.revoked_at is not None
    console.print(f"revoked {info.id} ({info.prefix}..., {info.scope.value}) at {rfc3339(info.revoked_at)}")


def _print_pool_types(account_id: str, grant: PoolGrant | None) -> None:
    granted = "all types" if grant is not None and grant.all_types else ", ".join(grant.types) if grant else ""
    console.print(f"account {account_id}: granted {granted or 'nothing beyond the default'}")
    console.print(f"its worker keys may serve: {', '.join(sorted(allowed_pool_types(grant)))}")


@pools_app.command("allow")
def pools_allow(
    account_id: Annotated[str, typer.Argument(help="Account id of the pool's worker key")],
    types: Annotated[str | None, typer.Option("--types", help="Comma-separated task types, beyond the default")]
    = None,
    all_types: Annotated[bool, typer.Option("--all", help="Every task type, present and future")] = False,
) -> None:
    """Allow an account's worker pools more task types than the default (replaces its previous grant)."""
    from cracker.domain.task_types import resolve_type

    if (types is None) == (not all_types):
        raise typer.BadParameter("give --types a,b or --all")
    wanted: set[str] = set()
    for raw in (types or "").split(","):
        if not raw.strip():
            continue
        resolved = resolve_type(raw.strip())
        if resolved is None:
            raise typer.BadParameter(f"unknown task type {raw.strip()!r}", param_hint="--types")
        wanted.add(resolved.name)
    grant = _run(lambda store: PoolPolicyService(store).grant(account_id, types=sorted(wanted), all_types=all_types))
    _print_pool_types(account_id, grant)


@pools_app.command("reset")
def pools_reset(account_id: Annotated[str, typer.Argument(help="Account id")]) -> None:
    """Withdraw the account's grant: its pools serve the default types again (from their next lease call)."""
    _run(lambda store: PoolPolicyService(store).reset(account_id))
    _print_pool_types(account_id, None)


@pools_app.command("show")
def pools_show(account_id: Annotated[str, typer.Argument(help="Account id")]) -> None:
    """The task types an account's worker pools may serve, and the accounts whose tasks they lease."""

    async def read(store: Store) -> tuple[PoolGrant | None, list[str] | None]:
        service = PoolPolicyService(store)
        return await service.get(account_id), await service.served_accounts(account_id)

    grant, served = _run(read)
    _print_pool_types(account_id, grant)
    console.print(f"it leases tasks of: {', '.join(served) if served else 'every account'}")


@pools_app.command("limit")
def pools_limit(
    account_id: Annotated[str, typer.Argument(help="Account id of the pool's worker keys")],
    accounts: Annotated[str | None, typer.Option("--accounts", help="Comma-separated account ids it may serve")]
    = None,
    any_account: Annotated[bool, typer.Option("--any", help="Remove the limit: every account's tasks")] = False,
) -> None:
    """Limit an account's worker pools to the tasks of named accounts (from their next lease call)."""
    if (accounts is None) == (not any_account):
        raise typer.BadParameter("give --accounts a,b or --any")
    wanted = [a.strip() for a in accounts.split(",") if a.strip()] if accounts is not None else None
    if wanted is not None and not wanted:
        raise typer.BadParameter("name at least one account", param_hint="--accounts")
    served = _run(lambda store: PoolPolicyService(store).limit(account_id, wanted))
    console.print(f"account {account_id}'s pools lease tasks of: {', '.join(served) if served else 'every account'}")


@offers_app.command("list")
def offers_list() -> None:
    """Show the price of every task type."""
    offers = _run(lambda store: OfferService(store).list(enabled_only=False))
    table = Table("type", "price (USD)", "enabled")
    for offer in offers:
        table.add_row(offer.type, format_usd(offer.price), "yes" if offer.enabled else "no")
    console.print(table)


@offers_app.command("set")
def offers_set(
    task_type: Annotated[str, typer.Argument(metavar="TYPE", help="Task type, e.g. altcha")],
    price: Annotated[str, typer.Argument(help="Price in USD, at most 4 decimals")],
    disable: Annotated[bool, typer.Option("--disable", help="Stop selling this type")] = False,
) -> None:
    """Set the price of a task type (and sell it, unless --disable)."""
    units = _amount(price)

    async def change(store: Store) -> None:
        await OfferService(store).set(task_type, units, enabled=not disable)

    try:
        _run(change)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    console.print(f"{task_type}: {format_usd(units)} USD{' (disabled)' if disable else ''}")


def _print_version(value: bool) -> None:
    if value:
        print(f"cracker {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit")
    ] = False,
) -> None:
    """Cracker: a self-hosted captcha-task service."""


def main() -> None:
    try:
        log_format = Settings().log_format
    except ValidationError:
        log_format = "json"  # the command that reads the settings reports what is wrong
    configure_logging(log_format)
    app()


@app.command("train-ocr")
def train_ocr(
    out: Annotated[Path, typer.Option(help="Folder for model.onnx, model.json and checkpoint.pt")] = Path("ocr-model"),
    steps: Annotated[int, typer.Option(help="Optimiser steps")] = 6000,
    minutes: Annotated[
        float | None, typer.Option(help="Stop after this long; the learning rate then follows the clock")
    ] = 45,
    batch_size: Annotated[int, typer.Option(help="Images per step")] = 64,
    learning_rate: Annotated[float, typer.Option(help="Peak learning rate (one-cycle schedule)")] = 2e-3,
    threads: Annotated[int, typer.Option(help="Torch threads")] = 1,
    workers: Annotated[int, typer.Option(help="Processes drawing captchas")] = 1,
    finetune: Annotated[
        Path | None, typer.Option(help="Folder of your labelled images (name 'label_xx.png' or labels.tsv) to mix in")
    ] = None,
    init: Annotated[Path | None, typer.Option(help="checkpoint.pt to start from (fine-tuning)")] = None,
    evaluate: Annotated[int, typer.Option(help="Fresh images per generator to score at the end (0: none)")] = 300,
    seed: Annotated[int, typer.Option(help="Seed of the synthetic image stream")] = 1,
    width: Annotated[int, typer.Option(help="Width of the network's grid in pixels (its height is 32)")] = 192,
    detail: Annotated[int, typer.Option(
        min=1, max=4, help="Input pixels per grid pixel along each side: 2 reads a 64 x 2*width input, for finer "
        "detail (about 1.5x the reading time); an --init checkpoint keeps its own detail if that is finer")] = 1,
    device: Annotated[str, typer.Option(help="auto (a CUDA GPU when one is visible), cpu or cuda")] = "auto",
    precision: Annotated[
        str, typer.Option(help="auto (bf16 where the CPU or GPU runs it natively), bf16 (autocast) or fp32")
    ] = "auto",
    reuse: Annotated[
        float, typer.Option(help="Average uses of each drawn image, each with a fresh crop (1: draw every image)")
    ] = 2.0,
    mix: Annotated[str | None, typer.Option(
        help="Shares of the training generators, e.g. 'pillow=2,captcha=1' (default: equal)")] = None,
) -> None:
    """Train the image-to-text model (needs the ocr-train extra: torch and the captcha generators)."""
    from cracker.ocr_training.commands import train
    from cracker.ocr_training.train import parse_mix

    try:
        shares = parse_mix(mix) if mix is not None else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--mix") from None
    with _needs_training_extra():
        train(out, steps, minutes, batch_size, learning_rate, threads, workers, finetune, init, evaluate, seed, width,
              device=device, precision=precision, reuse=reuse, mix=shares, detail=detail)


@app.command("eval-ocr")
def eval_ocr(
    folder: Annotated[Path | None, typer.Argument(help="Folder of labelled images")] = None,
    generated: Annotated[int, typer.Option(help="Also score this many fresh images per generator")] = 0,
    model: Annotated[Path | None, typer.Option(help="model.onnx to score (default: the shipped one)")] = None,
    case_sensitive: Annotated[bool, typer.Option(help="Count a case difference as an error")] = False,
    seed: Annotated[int, typer.Option(help="Seed for the generated images")] = 12345,
    second_look: Annotated[bool, typer.Option(
        "--second-look/--one-look", help="Read doubtful images' other views too, as the service does")] = True,
) -> None:
    """Sequence and character accuracy of the OCR model on a labelled folder and/or fresh captchas."""
    from cracker.ocr_training.commands import evaluate

    if folder is None and not generated:
        raise typer.BadParameter("give a FOLDER or --generated N")
    with _needs_training_extra():
        evaluate(folder, generated, model, case_sensitive, seed, second_look=second_look)
