"""The composition root: every kind of process gets its services and background jobs from one
function, with the same settings."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from cracker.domain.clock import new_id
from cracker.domain.dashboard import QueuePeak
from cracker.jobs import QueueSampler, Reaper, Retention
from cracker.runtime import ProcessKind, WorkerSpec, build_runtime
from cracker.store import NewTask, Rejection, Writer, open_store
from cracker.store import dashboard as dashboard_sql
from cracker.store.migrate import migrate
from tests.conftest import make_settings


@pytest.mark.parametrize(
    ("kind", "worker"), [(ProcessKind.API, None), (ProcessKind.API, WorkerSpec(1)), (ProcessKind.WORKER, WorkerSpec(1))]
)
async def test_every_process_kind_runs_the_reaper_and_retention_with_its_settings(
    tmp_path: Path, kind: ProcessKind, worker: WorkerSpec | None
) -> None:
    settings = make_settings(tmp_path, task_retention_s=1234.0, reaper_interval_s=0.2)
    runtime = await build_runtime(settings, kind, worker=worker, run_migrations=True)
    try:
        (reaper,) = [job for job in runtime.jobs if isinstance(job, Reaper)]
        (retention,) = [job for job in runtime.jobs if isinstance(job, Retention)]
        assert reaper.interval_s == 0.2
        assert retention.retention_s == 1234.0
        # A worker runs as two lanes: image-to-text has slots of its own (worker/lanes.py).
        assert sorted(lane.types == ["image-to-text"] for lane in runtime.workers) == (
            [] if worker is None else [False, True])
        # Webhooks are sent from API processes only.
        assert (runtime.dispatcher is not None) == (kind is ProcessKind.API)
    finally:
        await runtime.stop()


async def test_a_worker_process_purges_finished_tasks_past_retention(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, task_retention_s=10.0, reaper_interval_s=0.05)
    await asyncio.to_thread(migrate, settings.database_url)
    store = open_store(settings.database_url)
    account_id, task_id, now = new_id(), new_id(), time.time()

    def open_account(tx: Writer) -> None:
        tx.insert_account(account_id, "retention", now)
        tx.top_up(account_id, 100, now)

    try:
        await store.write(open_account)
        new = NewTask(task_id, account_id, "turnstile", {}, 9, created_at=now - 100, deadline_at=now + 100)
        assert await store.create_task(new) is not None
        # Ended 100 s ago: ten times the retention.
        assert await store.reject_task(task_id, Rejection("cancelled", "c", False), now - 100) is not None
        runtime = await build_runtime(settings, ProcessKind.WORKER, worker=WorkerSpec(1))
        try:
            for _ in range(200):
                if await store.get_task(task_id) is None:
                    break
                await asyncio.sleep(0.05)
            assert await store.get_task(task_id) is None
            assert await store.read(lambda r: r.get_balance(account_id)) is not None  # the ledger stays
        finally:
            await runtime.stop()
    finally:
        await store.close()


async def test_api_processes_sample_the_queue_and_workers_do_not(tmp_path: Path) -> None:
    """An API process samples what is queued per type every interval into the queue samples (the
    operator's charts); a worker process runs no sampler; retention purges the samples past their
    own retention setting and keeps the newer ones."""
    settings = make_settings(tmp_path, queue_sample_interval_s=0.1, queue_sample_retention_s=4321.0)
    await asyncio.to_thread(migrate, settings.database_url)
    store = open_store(settings.database_url)
    account_id, now = new_id(), time.time()

    def open_account(tx: Writer) -> None:
        tx.insert_account(account_id, "sampled", now)
        tx.top_up(account_id, 100, now)

    try:
        await store.write(open_account)
        new = NewTask(new_id(), account_id, "turnstile", {}, 9, created_at=now, deadline_at=now + 100)
        assert await store.create_task(new) is not None  # no worker runs: it stays queued
        worker = await build_runtime(settings, ProcessKind.WORKER, worker=None)
        try:
            assert not [job for job in worker.jobs if isinstance(job, QueueSampler)]
        finally:
            await worker.stop()
        runtime = await build_runtime(settings, ProcessKind.API, worker=None)
        try:
            (sampler,) = [job for job in runtime.jobs if isinstance(job, QueueSampler)]
            (retention,) = [job for job in runtime.jobs if isinstance(job, Retention)]
            assert (sampler.interval_s, retention.queue_sample_retention_s) == (0.1, 4321.0)
            peaks: list[QueuePeak] = []
            for _ in range(100):
                peaks = await store.read(lambda r: dashboard_sql.queue_peaks(r, now - 60, 3600))
                if peaks:
                    break
                await asyncio.sleep(0.05)
            assert [(p.type, p.pending, p.running) for p in peaks] == [("turnstile", 1, 0)]
            old_slot = now - 10_000  # past the 4321 s retention
            await store.write(lambda tx: dashboard_sql.insert_queue_samples(tx, old_slot, {("old", "pending"): 1}))
            await retention.run_once()
            kept = await store.read(lambda r: dashboard_sql.queue_peaks(r, 0, 3600))
            assert {p.type for p in kept} == {"turnstile"}
        finally:
            await runtime.stop()
    finally:
        await store.close()
