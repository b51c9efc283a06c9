"""``cracker ocr-models add/list/remove`` end to end: a real (short) fine-tune on a small labelled
folder, registered in the database, served by running server processes without a restart, and
refused again after removal; and ``add`` on an install without the ocr-train extra."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, fresh_postgres_database, started_server
from tests.integration.test_ocr_models import image_b64
from tests.timing import within

ADD_TIMEOUT_S = 240


def cli(env: dict[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cracker", *args], env=env, capture_output=True, text=True,
                          timeout=within(timeout), check=False)


def labelled_folder(folder: Path, count: int) -> Path:
    """``count`` wheezy captchas (a style the general model never trained on), named ``LABEL_n.png``."""
    pytest.importorskip("torch", reason="the fine-tune needs the ocr-train extra")
    from cracker.ocr_training.generators import samples

    folder.mkdir()
    for index, drawn in enumerate(samples(["wheezy"], count, seed=77)):
        drawn.image.save(folder / f"{drawn.text}_{index}.png")
    return folder


def create(server: LiveServer, key: str, **params: Any) -> httpx.Response:
    return httpx.post(f"{server.base_url}/v2/tasks/image-to-text", headers={"x-solvium-auth": key},
                      json={"image_b64": image_b64("AB12"), **params}, timeout=10)


def wait_until(check: Any, timeout: float) -> None:
    deadline = time.monotonic() + within(timeout)
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.2)


def offered(server: LiveServer) -> list[str]:
    offers = httpx.get(f"{server.base_url}/v2/offers", timeout=10).json()["offers"]
    return [m["name"] for o in offers if o["type"] == "image-to-text" for m in o["models"]]


@contextlib.contextmanager
def servers(tmp: Path, backend: str) -> Iterator[list[LiveServer]]:
    """One server on SQLite (one process serves a SQLite file); two on one PostgreSQL database."""
    if backend == "sqlite":
        with started_server(tmp) as server:
            yield [server]
        return
    with fresh_postgres_database() as url:
        (tmp / "a").mkdir()
        (tmp / "b").mkdir()
        with started_server(tmp / "a", CRACKER_DATABASE_URL=url) as first, \
                started_server(tmp / "b", CRACKER_DATABASE_URL=url) as second:
            yield [first, second]


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_add_list_remove_and_every_process_serves_the_model_without_restart(tmp_path: Path, backend: str) -> None:
    """Protects: ``add`` fine-tunes and registers in the database, printing the before/after table;
    running servers (another process, and on PostgreSQL a second server) serve tasks naming the new
    model within seconds and list it in offers; ``list`` shows it; ``remove`` makes every server
    refuse the name again (422 on ``model``) within seconds; a taken name is refused before training."""
    folder = labelled_folder(tmp_path / "labelled", 60)
    with servers(tmp_path, backend) as running:
        first, last = running[0], running[-1]
        _, key = first.new_account()
        refused = create(last, key, model="site-a")
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["details"][0]["field"] == "model"

        added = cli(first.env, "ocr-models", "add", "site-a", "--from-folder", str(folder), "--minutes", "0.1",
                    timeout=ADD_TIMEOUT_S)
        assert added.returncode == 0, added.stdout + added.stderr
        assert "Before and after" in added.stdout and "registered site-a" in added.stdout, added.stdout

        listed = cli(first.env, "ocr-models", "list")
        assert listed.returncode == 0 and "site-a" in listed.stdout, listed.stdout + listed.stderr
        again = cli(first.env, "ocr-models", "add", "site-a", "--from-folder", str(folder))
        assert again.returncode == 1 and "exists" in again.stderr, again.stderr

        for server in running:
            wait_until(lambda server=server: "site-a" in offered(server), 10)
        task = create(last, key, model="site-a")
        assert task.status_code == 201, task.text
        task_id = task.json()["task_id"]

        def finished() -> bool:
            view = httpx.get(f"{last.base_url}/v2/tasks/{task_id}", headers={"x-solvium-auth": key}, timeout=10)
            return bool(view.json()["status"] == "completed")

        wait_until(finished, 30)

        removed = cli(first.env, "ocr-models", "remove", "site-a")
        assert removed.returncode == 0, removed.stderr
        for server in running:
            wait_until(lambda server=server: create(server, key, model="site-a").status_code == 422, 10)
        unknown = cli(first.env, "ocr-models", "remove", "site-a")
        assert unknown.returncode == 1


def test_add_without_the_training_extra_says_which_extra_to_install(tmp_path: Path) -> None:
    """Protects: on a plain install (no torch) ``ocr-models add`` prints one line naming the
    ocr-train extra and exits 1, while ``list`` still works."""
    shadow = tmp_path / "shadow" / "torch"
    shadow.mkdir(parents=True)
    # A torch that cannot be imported, in front of the installed one: what a plain install looks like.
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    (tmp_path / "labelled").mkdir()
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "shadow"),
           "CRACKER_DATABASE_URL": f"sqlite:///{tmp_path / 'plain.db'}"}
    added = cli(env, "ocr-models", "add", "site-a", "--from-folder", str(tmp_path / "labelled"))
    assert added.returncode == 1
    lines = added.stderr.strip().splitlines()
    assert len(lines) == 1 and "ocr-train" in lines[0], added.stderr
    listed = cli(env, "ocr-models", "list")
    assert listed.returncode == 0 and "general" in listed.stdout, listed.stderr


def test_add_from_reports_fine_tunes_on_the_images_clients_reported(tmp_path: Path) -> None:
    """Protects: ``add --from-reports`` reads the labelled images that clients' reports kept for the
    model (the wrong readings with the text they show), fine-tunes on them and registers the result;
    with no reports it refuses with a clear line; one source of images is required."""
    pytest.importorskip("torch", reason="the fine-tune needs the ocr-train extra")
    import base64
    from io import BytesIO

    from cracker.ocr_training.generators import samples

    with started_server(tmp_path) as server:
        _, key = server.new_account()
        empty = cli(server.env, "ocr-models", "add", "site-r", "--from-reports", "--minutes", "0.05")
        assert empty.returncode == 1 and "5" in empty.stderr, empty.stdout + empty.stderr
        neither = cli(server.env, "ocr-models", "add", "site-r")
        assert neither.returncode != 0 and "--from-reports" in neither.stderr, neither.stderr

        headers = {"x-solvium-auth": key}
        reported = 0
        for drawn in samples(["wheezy"], 24, seed=5):
            png = BytesIO()
            drawn.image.save(png, format="PNG")
            body = {"image_b64": base64.b64encode(png.getvalue()).decode()}
            task_id = httpx.post(f"{server.base_url}/v2/tasks/image-to-text", headers=headers, json=body,
                                 timeout=10).json()["task_id"]
            wait_until(lambda task_id=task_id: httpx.get(
                f"{server.base_url}/v2/tasks/{task_id}", headers=headers, timeout=10).json()["status"] == "completed",
                30)
            report = httpx.post(f"{server.base_url}/v2/tasks/{task_id}/report", headers=headers,
                                json={"correct": False, "expected": drawn.text}, timeout=10)
            assert report.status_code == 200, report.text
            reported += report.json()["labelled"]
        assert reported == 24

        added = cli(server.env, "ocr-models", "add", "site-r", "--from-reports", "--minutes", "0.1",
                    timeout=ADD_TIMEOUT_S)
        assert added.returncode == 0, added.stdout + added.stderr
        assert "24 labelled images from reports on 'general'" in added.stdout, added.stdout
        assert "registered site-r" in added.stdout, added.stdout
        listed = cli(server.env, "ocr-models", "list")
        assert "site-r" in listed.stdout, listed.stdout
