"""The training code: growing a network, a short training run end to end, fine-tuning, evaluation."""

from __future__ import annotations

import itertools
import json
import os
import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from rich.console import Console
from typer.testing import CliRunner

try:
    import torch
except ImportError:  # the ocr-train extra is not installed
    if os.environ.get("CI"):
        raise  # CI installs it: a missing torch there is a failure, not a skip
    pytest.skip("the training tests need the ocr-train extra (torch)", allow_module_level=True)

from cracker.cli import app
from cracker.ocr_training import commands
from cracker.ocr_training.export import export_checkpoint
from cracker.ocr_training.generators import ALPHABET, Sample, samples
from cracker.ocr_training.history import read as read_history
from cracker.ocr_training.network import DEFAULT_SIZE, SMALL, CrnnLite, Size, grow, load, size_of
from cracker.ocr_training.train import (
    _POOL,
    HEIGHT,
    CaptchaStream,
    TrainConfig,
    parse_mix,
    time_precisions,
    train,
    use_bf16,
)
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.reader import OcrReader

TINY = Size(channels=16, project=16, hidden=8)


def _trained_looking(size: Size) -> CrnnLite:
    """A network with random weights and random BatchNorm statistics, so nothing is an identity."""
    torch.manual_seed(7)
    model = CrnnLite(len(ALPHABET), HEIGHT, size)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    return model.eval()


@pytest.mark.parametrize("bigger", [DEFAULT_SIZE, Size(channels=256, project=200, hidden=160)])
def test_a_grown_network_computes_what_the_smaller_one_did(bigger: Size) -> None:
    small = _trained_looking(SMALL)
    grown = load(small.state_dict(), len(ALPHABET), HEIGHT, bigger).eval()
    assert size_of(grown.state_dict()) == bigger
    images = torch.randn(4, 3, HEIGHT, 192)
    with torch.no_grad():
        torch.testing.assert_close(grown(images), small(images), atol=1e-4, rtol=1e-4)
    # The new units are live (random weights into themselves), so training can use them.
    assert grown.rnn.weight_hh_l0[SMALL.hidden: DEFAULT_SIZE.hidden].abs().sum() > 0


def test_finer_input_starts_as_the_old_network_on_the_image_averaged_back_to_its_grid() -> None:
    old = _trained_looking(DEFAULT_SIZE)
    finer = replace(DEFAULT_SIZE, detail=2)
    grown = load(old.state_dict(), len(ALPHABET), HEIGHT, finer).eval()
    assert size_of(grown.state_dict()) == finer
    images = torch.randn(4, 3, 2 * HEIGHT, 2 * 192)
    with torch.no_grad():
        torch.testing.assert_close(grown(images), old(torch.nn.functional.avg_pool2d(images, 2)),
                                   atol=1e-4, rtol=1e-4)


def test_grow_refuses_to_change_a_detail_once_set() -> None:
    fine = CrnnLite(len(ALPHABET), HEIGHT, replace(DEFAULT_SIZE, detail=2)).state_dict()
    with pytest.raises(ValueError, match="detail"):
        grow(fine, CrnnLite(len(ALPHABET), HEIGHT, replace(DEFAULT_SIZE, detail=3)).state_dict(),
             replace(DEFAULT_SIZE, detail=2))
    with pytest.raises(ValueError, match="detail"):
        grow(fine, CrnnLite(len(ALPHABET), HEIGHT, DEFAULT_SIZE).state_dict(), replace(DEFAULT_SIZE, detail=2))


def test_grow_refuses_to_shrink() -> None:
    with pytest.raises(ValueError, match="cannot shrink"):
        grow(CrnnLite(len(ALPHABET), HEIGHT, DEFAULT_SIZE).state_dict(),
             CrnnLite(len(ALPHABET), HEIGHT, SMALL).state_dict(), DEFAULT_SIZE)


def test_the_shipped_checkpoint_is_the_shipped_model(reader: OcrReader) -> None:
    """shipped_checkpoint.pt (what fine-tuning starts from) exports to the shipped model.onnx."""
    from cracker.ocr_training.commands import SHIPPED_CHECKPOINT

    model = load(torch.load(SHIPPED_CHECKPOINT, weights_only=True), len(ALPHABET), HEIGHT).eval()
    info = reader.model.info
    images = np.random.default_rng(3).normal(size=(2, 3, info.height, info.width)).astype(np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(reader.model.run(images), expected, atol=1e-3)


@pytest.mark.parametrize("precision", ["auto", "bf16", "fp32"])
def test_a_short_training_run_writes_a_model_the_solver_loads(tmp_path: Path, precision: str) -> None:
    out = tmp_path / "model"
    summary = train(TrainConfig(out=out, steps=3, batch_size=4, workers=0, size=TINY, seed=5, width=96,
                                precision=precision))
    assert summary["steps"] == 3 and summary["images"] == 12
    # The curve: the last step is always recorded, and drawn.
    points = read_history(out / "history.csv")
    assert points[-1].step == 3 and points[-1].images == 12 and points[-1].learning_rate > 0
    assert (out / "history.png").read_bytes().startswith(b"\x89PNG")
    model = OcrModel(out / "model.onnx")
    assert (model.info.width, model.info.height, model.info.alphabet) == (96, HEIGHT, ALPHABET)
    # The service's reader runs it: one class per character and the CTC blank, per grid column.
    assert model.run(np.zeros((1, 3, HEIGHT, 96), np.float32)).shape == (1, 96 // 4, len(ALPHABET) + 1)
    assert len(OcrReader(model).read([samples(["pillow"], 1, seed=1)[0].image])) == 1
    # The checkpoint exports to the same function as the ONNX file training wrote.
    export_checkpoint(out / "checkpoint.pt", tmp_path / "exported", 96)
    batch = np.random.default_rng(1).normal(size=(2, 3, HEIGHT, 96)).astype(np.float32)
    np.testing.assert_allclose(OcrModel(tmp_path / "exported" / "model.onnx").run(batch), model.run(batch), atol=1e-5)


def test_training_at_finer_detail_writes_a_model_that_reads_the_finer_input(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(TrainConfig(out=first, steps=2, batch_size=4, workers=0, size=TINY, seed=5, width=96))
    out = tmp_path / "finer"
    # Grown from a checkpoint without detail; fine-tuning it again without asking keeps the detail.
    train(TrainConfig(out=out, steps=2, batch_size=4, workers=0, size=replace(TINY, detail=2), seed=6, width=96,
                      init=first / "checkpoint.pt"))
    again = tmp_path / "again"
    train(TrainConfig(out=again, steps=2, batch_size=4, workers=0, size=TINY, seed=7, width=96,
                      init=out / "checkpoint.pt"))
    assert size_of(torch.load(again / "checkpoint.pt", weights_only=True)) == replace(TINY, detail=2)
    model = OcrModel(again / "model.onnx")
    assert (model.info.height, model.info.width) == (2 * HEIGHT, 2 * 96)
    assert json.loads((again / "model.json").read_text())["height"] == 2 * HEIGHT
    assert model.run(np.zeros((1, 3, 2 * HEIGHT, 2 * 96), np.float32)).shape == (1, 96 // 4, len(ALPHABET) + 1)
    assert len(OcrReader(model).read([samples(["captcha"], 1, seed=1)[0].image])) == 1
    export_checkpoint(again / "checkpoint.pt", tmp_path / "exported", 96)
    batch = np.random.default_rng(1).normal(size=(2, 3, 2 * HEIGHT, 2 * 96)).astype(np.float32)
    np.testing.assert_allclose(OcrModel(tmp_path / "exported" / "model.onnx").run(batch), model.run(batch), atol=1e-5)


def test_an_unknown_precision_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="precision must be auto, bf16 or fp32"):
        train(TrainConfig(out=tmp_path, steps=1, batch_size=2, workers=0, size=TINY, precision="fp16"))


def test_auto_precision_times_both_and_leaves_the_model_as_it_was(capsys: pytest.CaptureFixture[str]) -> None:
    model = CrnnLite(len(ALPHABET), HEIGHT, TINY)
    model.train()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    chose = use_bf16("auto", model, batch_size=4, width=64)
    assert f"training in {'bf16' if chose else 'fp32'}" in capsys.readouterr().out
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key  # weights and batch norm's statistics alike
    times = time_precisions(model, batch_size=4, width=64, rounds=2)
    assert set(times) == {"fp32", "bf16"} and all(seconds > 0 for seconds in times.values())
    assert use_bf16("bf16", model, 4) and not use_bf16("fp32", model, 4)


class _CountingStream(CaptchaStream):
    """Draws a blank image labelled with a serial number, and counts the draws."""

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self.draws = 0

    def _draw(self, rng: random.Random) -> tuple[Image.Image, str]:
        self.draws += 1
        return Image.new("RGB", (40, 20), "white"), str(self.draws)


@pytest.mark.parametrize("reuse", [1.0, 3.0])
def test_each_drawn_image_is_used_about_reuse_times(tmp_path: Path, reuse: float) -> None:
    stream = _CountingStream(TrainConfig(out=tmp_path, reuse=reuse, width=48))
    items = list(itertools.islice(iter(stream), _POOL + 3000))
    labels = [label for _, label in items]
    if reuse == 1.0:
        assert stream.draws == len(items) and len(set(labels)) == len(labels)
        return
    # The pool fills with fresh images first, then a fresh one comes with probability 1 / reuse.
    assert labels[:_POOL] == [str(number) for number in range(1, _POOL + 1)]
    assert 850 < stream.draws - _POOL < 1150  # 1,000 expected; the standard deviation is about 26
    # Reuses are spread out: a batch of 64 rarely holds the same image twice.
    batches = [labels[start:start + 64] for start in range(_POOL, len(labels) - 63, 64)]
    assert np.mean([len(set(batch)) for batch in batches]) > 60


def test_a_mix_is_parsed_into_generators_and_shares() -> None:
    assert parse_mix("pillow=2, captcha=1") == (("pillow", "captcha"), (2.0, 1.0))
    assert parse_mix("captcha") == (("captcha",), (1.0,))
    assert parse_mix("pillow=0.5,") == (("pillow",), (0.5,))


@pytest.mark.parametrize(("mix", "message"), [
    ("wheezy=1", "unknown training generator 'wheezy'"),  # held out: never trained on
    ("multicolor", "unknown training generator"),
    ("pillow=1,pillow=2", "named twice"),
    ("pillow=x", "not a number"),
    ("pillow=-1", ">= 0"),
    ("pillow=nan", ">= 0"),
    ("pillow=inf", ">= 0"),
    ("pillow=0,captcha=0", "no generator"),
    ("", "no generator"),
])
def test_a_bad_mix_is_refused_with_a_reason(mix: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_mix(mix)


def test_a_stream_refuses_shares_that_do_not_match_its_generators(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="1 shares for 2 generators"):
        CaptchaStream(TrainConfig(out=tmp_path, generators=("pillow", "captcha"), mix=(1.0,)))


def test_train_ocr_trains_on_the_mix_and_records_it_with_the_model(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "train-ocr", "--out", str(out), "--steps", "2", "--batch-size", "4", "--workers", "0", "--evaluate", "0",
        "--width", "96", "--precision", "fp32", "--mix", "pillow=3,captcha=1"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert json.loads((out / "model.json").read_text())["mix"] == "pillow=3,captcha=1"


def test_train_ocr_refuses_a_bad_mix_before_training(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train-ocr", "--out", str(tmp_path / "out"), "--mix", "wheezy=1"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 2
    assert "--mix" in result.output and "wheezy" in result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("mix", "pillow_share"), [(None, 0.5), ((3.0, 1.0), 0.75), ((1.0, 0.0), 1.0)])
def test_the_stream_draws_each_generator_in_its_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      mix: tuple[float, float] | None, pillow_share: float) -> None:
    drawn: list[str] = []

    def blank(generator: str, rng: random.Random) -> Sample:
        drawn.append(generator)
        return Sample(Image.new("RGB", (40, 20), "white"), "ab", generator)

    monkeypatch.setattr("cracker.ocr_training.train.sample", blank)
    config = TrainConfig(out=tmp_path, reuse=1.0, width=48, generators=("pillow", "captcha"), mix=mix)
    list(itertools.islice(iter(CaptchaStream(config)), 2000))
    assert len(drawn) == 2000
    # 2,000 draws: the standard deviation of the share is at most 1.1 points.
    assert abs(drawn.count("pillow") / len(drawn) - pillow_share) < 0.04


def test_fine_tuning_on_a_labelled_folder_grows_the_checkpoint_it_starts_from(tmp_path: Path) -> None:
    first = tmp_path / "first"
    train(TrainConfig(out=first, steps=2, batch_size=4, workers=0, size=TINY, seed=5))
    folder = tmp_path / "mine"
    folder.mkdir()
    for number, drawn in enumerate(samples(["pillow"], 4, seed=2)):
        drawn.image.save(folder / f"{drawn.text}_{number}.png")
    bigger = Size(channels=24, project=20, hidden=12)
    second = tmp_path / "second"
    train(TrainConfig(out=second, steps=2, batch_size=4, workers=0, size=bigger, init=first / "checkpoint.pt",
                      user_folder=folder, user_share=1.0, seed=6))
    assert size_of(torch.load(second / "checkpoint.pt", weights_only=True)) == bigger


@pytest.mark.parametrize("look", [[], ["--one-look"]])
def test_eval_ocr_scores_a_labelled_folder(tmp_path: Path, look: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    for number, drawn in enumerate(samples(["captcha"], 6, seed=3)):
        drawn.image.save(tmp_path / f"{drawn.text}_{number}.png")
    # Wide enough for the folder's whole path: the module's console took its width when it was
    # first imported (by whichever test came first), so COLUMNS set here would not reach it.
    monkeypatch.setattr(commands, "console", Console(width=250))
    result = CliRunner().invoke(app, ["eval-ocr", str(tmp_path), *look])
    assert result.exit_code == 0, result.output
    assert "sequence acc." in result.output and str(tmp_path) in result.output
    row = next(line for line in result.output.splitlines() if str(tmp_path) in line)
    assert "│ 6 " in row  # six images scored


def test_training_warns_when_font_packages_are_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A run without the fonts the shipped model learned would forget them: it says so, and records its fonts."""
    from cracker.ocr_training import generators

    empty = tmp_path / "no-fonts"
    empty.mkdir()
    monkeypatch.setattr(generators, "_SYSTEM_FONT_DIRS", {**generators._SYSTEM_FONT_DIRS, str(empty): "fonts-example"})
    assert generators.missing_font_packages()[-1] == "fonts-example"
    warning = generators.font_warning()
    assert warning is not None and "apt-get install" in warning and "fonts-example" in warning
    train(TrainConfig(out=tmp_path / "model", steps=1, batch_size=2, workers=0, size=TINY, width=96))
    assert "fonts-example not installed" in capsys.readouterr().out
    meta = json.loads((tmp_path / "model" / "model.json").read_text())
    assert meta["training_fonts"] == str(len(generators.training_fonts()))


def test_a_soup_averages_the_weights_and_measures_batch_norm_afresh(tmp_path: Path) -> None:
    from cracker.ocr_training.export import export_checkpoint
    from cracker.ocr_training.soup import soup

    runs = [tmp_path / "a", tmp_path / "b"]
    for seed, out in enumerate(runs):
        train(TrainConfig(out=out, steps=2, batch_size=4, workers=0, size=TINY, seed=seed, width=96))
    checkpoints = [out / "checkpoint.pt" for out in runs]
    states = [torch.load(path, weights_only=True) for path in checkpoints]
    soup(checkpoints, tmp_path / "soup", batches=2, batch_size=4, width=96)
    mixed = torch.load(tmp_path / "soup" / "checkpoint.pt", weights_only=True)
    for key, value in mixed.items():
        if "running" in key:  # measured on fresh batches, not averaged
            assert not torch.allclose(value, (states[0][key] + states[1][key]) / 2), key
        elif value.is_floating_point():
            torch.testing.assert_close(value, (states[0][key] + states[1][key]) / 2)
    # The ONNX file it writes is its checkpoint's function, and the solver loads it.
    export_checkpoint(tmp_path / "soup" / "checkpoint.pt", tmp_path / "exported", width=96)
    batch = np.random.default_rng(4).normal(size=(2, 3, HEIGHT, 96)).astype(np.float32)
    model = OcrModel(tmp_path / "soup" / "model.onnx")
    np.testing.assert_allclose(OcrModel(tmp_path / "exported" / "model.onnx").run(batch), model.run(batch), atol=1e-5)
    assert json.loads((tmp_path / "soup" / "model.json").read_text())["soup_of"] == "2"
    with pytest.raises(ValueError, match="two checkpoints or more"):
        soup(checkpoints[:1], tmp_path / "none")
    torch.save(CrnnLite(len(ALPHABET), HEIGHT, SMALL).state_dict(), tmp_path / "small.pt")
    with pytest.raises(ValueError, match="different sizes"):
        soup([checkpoints[0], tmp_path / "small.pt"], tmp_path / "none")
