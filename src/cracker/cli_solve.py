"""`cracker solve TYPE --field value ...`: submit a task through the SDK and wait with a live status line."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from cracker.sdk import Solvium, SolviumError, Task

console = Console(stderr=True)


def parse_fields(args: list[str]) -> dict[str, Any]:
    """``--site-key K --config @config.json --difficulty 4`` -> {"site_key": "K", "config": {...}, "difficulty": 4}.

    A value is read from a file when it starts with ``@``, then taken as JSON when it parses as
    JSON (numbers, booleans, objects), else as the plain string.
    """
    fields: dict[str, Any] = {}
    i = 0
    while i < len(args):
        name = args[i]
        if not name.startswith("--") or len(name) < 3:
            raise typer.BadParameter(f"expected --field value pairs, got {name!r}")
        if i + 1 >= len(args):
            raise typer.BadParameter(f"{name} needs a value")
        raw = args[i + 1]
        if raw.startswith("@"):
            raw = Path(raw[1:]).read_text().strip()
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        fields[name[2:].replace("-", "_")] = value
        i += 2
    return fields


def solve(
    ctx: typer.Context,
    task_type: Annotated[str, typer.Argument(metavar="TYPE", help="Task type, e.g. pow-sha256, altcha, turnstile")],
    api_key: Annotated[str, typer.Option(envvar="CRACKER_API_KEY", help="Client API key")],
    base_url: Annotated[str, typer.Option(envvar="CRACKER_URL", help="Server URL")] = "http://127.0.0.1:8000",
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the task")] = 180.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole task envelope as JSON")] = False,
) -> None:
    """Submit a task and wait for it. Fields are --name value pairs (--site-key K --url U ...)."""
    fields = parse_fields(list(ctx.args))
    with Solvium(api_key=api_key, base_url=base_url) as client:
        try:
            task = client.create_task_sync(task_type, **fields)
            task = _wait_with_status(client, task, timeout)
        except SolviumError as error:
            console.print(f"[red]{error.code}[/red]: {error.message}")
            if error.details:
                for detail in error.details:
                    console.print(f"  {detail.get('field')}: {detail.get('message')} ({detail.get('code')})")
            if error.doc_url:
                console.print(f"see {error.doc_url}")
            raise typer.Exit(1) from None
    if as_json:
        print(json.dumps(task, indent=2))
    elif task.status == "completed":
        print(task.token)
    else:
        rejection = task.error or {}
        console.print(f"[red]rejected[/red] {rejection.get('code')}: {rejection.get('message')}")
        console.print(f"see {rejection.get('doc_url')}")
        raise typer.Exit(1)


def _wait_with_status(client: Solvium, task: Task, timeout: float) -> Task:
    started = time.monotonic()
    with console.status(f"{task.task_id} {task.status}") as status:
        while not task.done:
            elapsed = time.monotonic() - started
            if elapsed > timeout:
                raise typer.Exit(2)
            status.update(f"{task['type']} task {task.task_id}: [bold]{task.status}[/bold] ({elapsed:.1f} s)")
            # Long-poll in short slices so the line keeps ticking.
            task = client.get_task_sync(task.task_id, wait=min(1.0, timeout - elapsed))
    console.print(f"{task['type']} task {task.task_id}: {task.status} in {time.monotonic() - started:.2f} s"
                  f" (cost {task.get('cost')} USD)")
    return task
