"""Remote worker pools over HTTP, with worker-scoped keys: register, lease, heartbeat, complete,
reject, deregister. The protocol is described for pool authors in docs/workers.md."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field, field_validator
from starlette.responses import Response

from cracker.api.deps import RuntimeDep, WorkerKey
from cracker.api.envelope import JSONBytes
from cracker.api.params import canonical_types
from cracker.api.responses import AUTH, COMMON, errors
from cracker.domain.catalogue import CATALOGUE
from cracker.domain.clock import rfc3339
from cracker.domain.tasks import ClaimedTask
from cracker.domain.workers import Completion, HeldLease, WorkerInfo
from cracker.runtime import Runtime

router = APIRouter(prefix="/v2/workers", tags=["workers"])

#: Codes a worker may not report: the server's own lifecycle outcomes.
_SERVER_ONLY_CODES = frozenset({"cancelled", "worker_lost"})
_REPORTABLE = sorted(c for c, s in CATALOGUE.items() if s.kind == "task" and c not in _SERVER_ONLY_CODES)

WorkerId = Annotated[str, Path(max_length=64, description="The id POST /v2/workers answered")]


# --- wire models (they document the protocol in /openapi.json) ---


class RegisterWorkerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200, description="Free text for operators", examples=["pool-eu-1"])
    types: list[str] = Field(min_length=1, max_length=50, description="Task types this pool solves",
                             examples=[["turnstile", "cf-clearance"]])
    concurrency: int = Field(default=1, ge=1, le=100_000, description="Tasks it can solve at once (for metrics)")


class WorkerModel(BaseModel):
    worker_id: str
    name: str
    types: list[str]
    concurrency: int
    lease_s: float = Field(description="A lease (and the registration) lasts this long without a heartbeat")
    heartbeat_interval_s: float = Field(description="Heartbeat at least this often")
    expires_at: str


class LeaseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_tasks: int = Field(default=1, ge=1, le=100, description="Lease up to this many tasks at once")
    wait: float = Field(default=0, ge=0, le=60, description="Seconds to hold the request open until a task arrives")
    types: list[str] | None = Field(default=None, description="Only these of the registered types")


class LeasedTaskModel(BaseModel):
    task_id: str
    type: str
    params: dict[str, Any] = Field(description="The client's request fields, as validated at creation")
    attempt: int = Field(description="Send it back with the outcome: it fences the lease")
    lease_expires_at: str
    deadline_at: str = Field(description="Past this the task is rejected solve_timeout; stop working on it")


class LeaseResponse(BaseModel):
    tasks: list[LeasedTaskModel]


class HeartbeatRequest(BaseModel):
    """Optional, empty today: a heartbeat needs no body (the route accepts none)."""

    model_config = ConfigDict(extra="forbid")


class HeldLeaseModel(BaseModel):
    task_id: str
    attempt: int
    lease_expires_at: str


class HeartbeatResponse(BaseModel):
    worker_id: str
    expires_at: str
    leases: list[HeldLeaseModel] = Field(
        description="The leases this worker still holds; a task it works on that is missing here was "
        "lost (expired, or ended otherwise): drop it"
    )


class SolutionModel(BaseModel):
    model_config = ConfigDict(extra="allow")
    token: str = Field(min_length=1, description="What the client submits to the protected page")


class CompleteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Bounded: attempts are small counts, and the database column is a 32-bit integer.
    attempt: int = Field(ge=1, le=2**31 - 1)
    solution: SolutionModel


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # Bounded: attempts are small counts, and the database column is a 32-bit integer.
    attempt: int = Field(ge=1, le=2**31 - 1)
    code: str = Field(description="A task error code of GET /v2/errors", examples=["proxy_blocked"])
    message: str | None = Field(default=None, max_length=500)

    @field_validator("code")
    @classmethod
    def _task_code(cls, code: str) -> str:
        if code not in _REPORTABLE:
            raise ValueError(f"not a task error code a worker may report; one of {', '.join(_REPORTABLE)}")
        return code


class OutcomeResponse(BaseModel):
    task_id: str
    status: Literal["completed", "rejected"]


class DeregisterResponse(BaseModel):
    requeued: int = Field(description="Tasks it held, back in the queue")


def _worker_json(runtime: Runtime, worker: WorkerInfo) -> dict[str, Any]:
    service = runtime.worker_service
    return {
        "worker_id": worker.id, "name": worker.name, "types": list(worker.types), "concurrency": worker.concurrency,
        "lease_s": service.lease_s, "heartbeat_interval_s": service.heartbeat_interval_s,
        "expires_at": rfc3339(worker.expires_at),
    }


def _held_json(lease: HeldLease) -> dict[str, Any]:
    return {"task_id": lease.task_id, "attempt": lease.attempt, "lease_expires_at": rfc3339(lease.lease_expires_at)}


def _leased_json(claim: ClaimedTask, lease_expires_at: float) -> dict[str, Any]:
    task = claim.task
    return {
        "task_id": task.id, "type": task.type, "params": task.params, "attempt": claim.attempt,
        "lease_expires_at": rfc3339(lease_expires_at), "deadline_at": rfc3339(task.deadline_at),
    }


_WORKER_ERRORS = (*AUTH, *COMMON, "not_found", "validation_failed")


@router.post(
    "", status_code=201, response_model=WorkerModel,
    responses=errors(*AUTH, *COMMON, "validation_failed", "pool_type_not_allowed"),
    summary="Register a worker pool", operation_id="register_worker",
    description="Declares the task types this pool solves. From now until its registration expires "
    "(`lease_s` without a heartbeat or a lease call), creation accepts tasks of these types. A worker "
    "key may register for the types no built-in solver covers; other types answer `403 "
    "pool_type_not_allowed` unless an operator allowed them for the key's account.",
)
async def register_worker(runtime: RuntimeDep, key: WorkerKey, body: RegisterWorkerRequest) -> Response:
    types = canonical_types(body.types)
    worker = await runtime.worker_service.register_pool(
        account_id=key.account_id, name=body.name, types=types, concurrency=body.concurrency
    )
    return JSONBytes(_worker_json(runtime, worker), status_code=201)


@router.get(
    "/{worker_id}", response_model=WorkerModel, responses=errors(*_WORKER_ERRORS),
    summary="A registered worker pool", operation_id="get_worker",
)
async def get_worker(runtime: RuntimeDep, key: WorkerKey, worker_id: WorkerId) -> Response:
    worker = await runtime.worker_service.get(worker_id, account_id=key.account_id)
    return JSONBytes(_worker_json(runtime, worker))


@router.post(
    "/{worker_id}/lease", response_model=LeaseResponse, responses=errors(*_WORKER_ERRORS),
    summary="Lease pending tasks (long-poll)", operation_id="lease_tasks",
    description="Answers at once with the tasks leased (oldest first), or holds the request up to "
    "`wait` seconds until one arrives and answers `{\"tasks\": []}` if none did. Counts as a heartbeat.",
)
async def lease_tasks(runtime: RuntimeDep, key: WorkerKey, worker_id: WorkerId, body: LeaseRequest) -> Response:
    service = runtime.worker_service
    worker = await service.get(worker_id, account_id=key.account_id)
    types = canonical_types(body.types) if body.types is not None else None
    claims = await service.lease(worker, types, body.max_tasks, body.wait)
    expires = service.clock() + service.lease_s
    # Each task is serialised on its own: one that cannot be sent (a stored number orjson refuses,
    # from before creation bounded them) is ended, uncharged, instead of failing the whole answer
    # after the claim committed and stranding every other task of the batch as running.
    leased: list[orjson.Fragment] = []
    for claim in claims:
        try:
            leased.append(orjson.Fragment(orjson.dumps(_leased_json(claim, expires))))
        except (orjson.JSONEncodeError, TypeError) as exc:
            await service.reject_unsendable(claim, str(exc))
    return JSONBytes({"tasks": leased})


@router.post(
    "/{worker_id}/heartbeat", response_model=HeartbeatResponse, responses=errors(*_WORKER_ERRORS),
    summary="Keep the registration and every lease alive", operation_id="heartbeat_worker",
)
async def heartbeat_worker(
    runtime: RuntimeDep, key: WorkerKey, worker_id: WorkerId, body: HeartbeatRequest | None = None
) -> Response:
    service = runtime.worker_service
    await service.get(worker_id, account_id=key.account_id)
    held = await service.heartbeat(worker_id)
    if held is None:
        await service.get(worker_id, account_id=key.account_id)  # gone meanwhile: answers not_found
        held = []
    return JSONBytes({
        "worker_id": worker_id, "expires_at": rfc3339(service.clock() + service.lease_s),
        "leases": [_held_json(h) for h in held],
    })


@router.post(
    "/{worker_id}/tasks/{task_id}/complete", response_model=OutcomeResponse,
    responses=errors(*_WORKER_ERRORS, "lease_lost"),
    summary="Report a solution", operation_id="complete_task",
    description="Completes the task and captures its hold, if this worker still holds the lease of "
    "`attempt`; otherwise `409 lease_lost` and the result is dropped.",
)
async def complete_task(
    runtime: RuntimeDep, key: WorkerKey, worker_id: WorkerId, task_id: str, body: CompleteRequest
) -> Response:
    service = runtime.worker_service
    worker = await service.get(worker_id, account_id=key.account_id)
    completion = Completion(
        task_id=task_id, lease_owner=worker_id, attempt=body.attempt, solution=body.solution.model_dump(mode="json")
    )
    task = await service.complete_remote(worker, completion)
    return JSONBytes({"task_id": task.id, "status": task.status.value})


@router.post(
    "/{worker_id}/tasks/{task_id}/reject", response_model=OutcomeResponse,
    responses=errors(*_WORKER_ERRORS, "lease_lost"),
    summary="Report a failure with a task error code", operation_id="reject_task",
    description="Rejects the task with `code` (a task code of GET /v2/errors); the hold is released, "
    "or kept when the code is `charged`. A charged code is accepted only where it applies (a proxy "
    "code only for a task sent with a proxy); elsewhere `422 validation_failed` (detail "
    "`charge_not_applicable`) and the task stays leased. `409 lease_lost` when this worker no longer "
    "holds the lease.",
)
async def reject_task(
    runtime: RuntimeDep, key: WorkerKey, worker_id: WorkerId, task_id: str, body: RejectRequest
) -> Response:
    service = runtime.worker_service
    worker = await service.get(worker_id, account_id=key.account_id)
    task = await service.reject_remote(worker, task_id, body.attempt, body.code, body.message)
    return JSONBytes({"task_id": task.id, "status": task.status.value})


@router.delete(
    "/{worker_id}", response_model=DeregisterResponse, responses=errors(*_WORKER_ERRORS),
    summary="Deregister (clean shutdown); held tasks go back to the queue at once",
    operation_id="deregister_worker",
)
async def deregister_worker(runtime: RuntimeDep, key: WorkerKey, worker_id: WorkerId) -> Response:
    service = runtime.worker_service
    await service.get(worker_id, account_id=key.account_id)
    return JSONBytes({"requeued": await service.deregister(worker_id)})
