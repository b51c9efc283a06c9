"""``cracker ocr-models``: register, list and remove the named OCR models tasks may ask for.

``add`` fine-tunes (needs the ``ocr-train`` extra: torch); ``list`` and ``remove`` work on a plain
install. Models are global: registered by the operator, usable by every account.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

from cracker.domain.clock import rfc3339
from cracker.domain.ocr_models import GENERAL_MODEL, OcrModelRecord, OcrModelSummary, name_problem
from cracker.service.ocr_models import ModelNameTaken, OcrModelService, new_summary

if TYPE_CHECKING:
    from cracker.ocr_training.finetune import FineTuneResult
    from cracker.store import Store

ocr_models_app = typer.Typer(help="Named OCR models fine-tuned for a site's captcha.", no_args_is_help=True)
console = Console(soft_wrap=True)
#: Runs one store operation (``cli._run``: migrate first, exit 1 with one line on a CrackerError).
StoreRunner = Callable[[Callable[["Store"], object]], object]


def _cli() -> tuple[StoreRunner, Callable[[str], typer.Exit]]:
    from cracker import cli  # the helpers of the main CLI module (imported late: it imports this one)

    return cli._run, cli._fail  # type: ignore[return-value]


def register(name: str, result: FineTuneResult, base: str) -> OcrModelSummary:
    """Store a fine-tune's result under ``name``: every process serves it within seconds."""
    run, fail = _cli()
    summary = new_summary(
        name, base=base, score=result.after.sequence_accuracy, base_score=result.before.sequence_accuracy,
        held_out=result.after.images, trained_on=result.train_images, size=len(result.onnx),
    )
    record = OcrModelRecord(summary=summary, onnx=result.onnx, metadata=result.metadata, checkpoint=result.checkpoint)

    async def add(store: Store) -> None:
        await OcrModelService(store).add(record)

    try:
        run(add)
    except ModelNameTaken as exc:
        raise fail(str(exc)) from None
    return summary


def base_checkpoint(base: str) -> bytes | None:
    """The weights to start from: None for the general model, else a registered model's."""
    if base == GENERAL_MODEL:
        return None
    run, fail = _cli()

    async def read(store: Store) -> OcrModelRecord | None:
        return await OcrModelService(store).stored(base)

    record = run(read)
    if not isinstance(record, OcrModelRecord):
        raise fail(f"no OCR model named {base!r} (cracker ocr-models list)")
    if record.checkpoint is None:
        raise fail(f"the model {base!r} kept no weights to fine-tune from")
    return record.checkpoint


def add_from_samples(name: str, samples: Sequence[tuple[bytes, str]], base: str, minutes: float,
                     threads: int) -> OcrModelSummary:
    """Fine-tune ``base`` on (image bytes, label) pairs with a progress bar, print the before/after table,
    and register the result as ``name``: what ``add`` runs, whatever the images' source."""
    from cracker.ocr_training.commands import fine_tune_with_progress
    from cracker.ocr_training.finetune import NotEnoughImages

    _, fail = _cli()
    start_from = base_checkpoint(base)
    try:
        result = fine_tune_with_progress(samples, start_from, minutes, threads=threads, base_name=base)
    except NotEnoughImages as exc:
        raise fail(str(exc)) from None
    summary = register(name, result, base)
    console.print(f"registered [bold]{name}[/bold]: {summary.score:.2%} on {summary.held_out} held-out images "
                  f"({base}: {summary.base_score:.2%}); tasks may send \"model\": \"{name}\"")
    return summary


def _taken(name: str) -> bool:
    run, _ = _cli()

    async def listed(store: Store) -> list[OcrModelSummary]:
        return await OcrModelService(store).list()

    models = run(listed)
    assert isinstance(models, list)
    return any(model.name == name for model in models)


@ocr_models_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="The name tasks will send in \"model\" (a-z, 0-9, '.', '_', '-')")],
    from_folder: Annotated[Path | None, typer.Option(
        "--from-folder", help="Labelled images: named 'label_xx.png', or listed in labels.tsv (file<TAB>label)",
        exists=True, file_okay=False)] = None,
    from_reports: Annotated[bool, typer.Option(
        "--from-reports", help="The images clients reported on (POST /v2/tasks/{id}/report) for the --model "
        "it starts from, with the text they show")] = False,
    max_reports: Annotated[int, typer.Option(min=1, help="With --from-reports: the newest this many")] = 20_000,
    minutes: Annotated[float, typer.Option(min=0.05, help="Wall-clock budget of the training steps")] = 5.0,
    base: Annotated[str, typer.Option("--model", help="The model to start from")] = GENERAL_MODEL,
    threads: Annotated[int, typer.Option(
        min=1, help="Torch threads (more than one pays only on an otherwise idle machine)")] = 1,
) -> None:
    """Fine-tune a copy of a model on labelled images, score it on a held-out fifth, and register it."""
    run, fail = _cli()
    if (from_folder is None) == (not from_reports):
        raise typer.BadParameter("give one of --from-folder DIR and --from-reports", param_hint="--from-folder")
    problem = name_problem(name)
    if problem is not None:
        raise typer.BadParameter(problem, param_hint="NAME")
    if _taken(name):  # before minutes of training, not after
        raise fail(f"a model named {name!r} exists; remove it first (cracker ocr-models remove {name})")
    from cracker.cli import _needs_training_extra

    with _needs_training_extra():
        from cracker.ocr_training.finetune import images_from_folder

        if from_folder is not None:
            samples = images_from_folder(from_folder)
        else:
            async def reported(store: Store) -> list[tuple[bytes, str]]:
                return await OcrModelService(store).reported_samples(base, max_reports)

            found = run(reported)
            assert isinstance(found, list)
            samples = found
            console.print(f"{len(samples)} labelled images from reports on {base!r}")
        add_from_samples(name, samples, base, minutes, threads)


@ocr_models_app.command("list")
def list_models() -> None:
    """The registered models: held-out score, size and date."""
    run, _ = _cli()

    async def listed(store: Store) -> list[OcrModelSummary]:
        return await OcrModelService(store).list()

    models = run(listed)
    assert isinstance(models, list)
    table = Table("name", "score", "before", "held out", "trained on", "size", "created", "from")
    table.add_row(GENERAL_MODEL, "-", "-", "-", "-", "-", "shipped", "-")
    for model in models:
        table.add_row(model.name, f"{model.score:.2%}", f"{model.base_score:.2%}", str(model.held_out),
                      str(model.trained_on), f"{model.size / 1e6:.1f} MB", rfc3339(model.created_at) or "",
                      model.base)
    console.print(table)


@ocr_models_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="The model to remove")]) -> None:
    """Remove a model: tasks naming it are refused (422) within seconds, on every process."""
    run, _ = _cli()

    async def removed(store: Store) -> None:
        await OcrModelService(store).remove(name)

    run(removed)  # an unknown name: NotFound, one line and exit 1 (cli._run)
    console.print(f"removed {name}")
