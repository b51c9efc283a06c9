"""Overload: one account floods at a multiple of its rate limit while another keeps its normal pace.

Shared by the acceptance test (tests/acceptance/test_overload.py) and the benchmark
(bench/overload_bench.py, which puts this folder on ``sys.path`` to import it). The load comes
from a bare keep-alive HTTP/1.1 client on asyncio: on two shared cores, httpx would cost the
server more CPU than the limiter does.
"""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

TURNSTILE_PASS = "1x00000000000000000000AA"
#: What the flooding account sends: creates, the request a limit must stop (a write, a charge and
#: a solve each), alternating with polls.
CREATE_PATH = "/v2/tasks/turnstile"
CREATE_BODY = {"url": "https://example.com", "site_key": TURNSTILE_PASS}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: dict[str, object]


class Connection:
    """One keep-alive connection; answers with headers (the 429's ``Retry-After``)."""

    def __init__(self, port: int, api_key: str) -> None:
        self.port = port
        self._auth = f"x-solvium-auth: {api_key}\r\n".encode()
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str, body: object | None = None) -> Answer:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._streams
        payload = orjson.dumps(body) if body is not None else b""
        writer.write(
            f"{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            f"content-length: {len(payload)}\r\n".encode() + self._auth + b"\r\n" + payload
        )
        status = int((await reader.readline()).split(b" ", 2)[1])
        headers: dict[str, str] = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            headers[name.decode().lower()] = value.decode().strip()
        data = await reader.readexactly(int(headers.get("content-length", "0")))
        return Answer(status, headers, orjson.loads(data) if data else {})

    def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


@dataclass
class FloodResult:
    #: (time sent, relative to the phase's start; port; status) of every request.
    sent: list[tuple[float, int, int]] = field(default_factory=list)
    #: Each 429 that lacked Retry-After or the error envelope (should stay empty).
    bad_refusals: list[str] = field(default_factory=list)

    def accepted_rate(self, start_s: float, end_s: float) -> float:
        """Requests accepted per second among those sent between ``start_s`` and ``end_s`` (after
        ``drained_at``, this is the buckets' refill rate)."""
        accepted = sum(1 for at, _, status in self.sent if start_s <= at < end_s and status < 400)
        return accepted / (end_s - start_s)

    def drained_at(self) -> float:
        """When every process's bucket had been emptied (its first 429): from then on, requests are
        accepted at the refill rate. A server slow to warm up may take a while to get there."""
        first_refusal: dict[int, float] = {}
        ports = {port for _, port, _ in self.sent}
        for at, port, status in self.sent:
            if status == 429 and port not in first_refusal:
                first_refusal[port] = at
        if set(first_refusal) != ports:
            raise AssertionError(f"not every process refused a request: {sorted(first_refusal)} of {sorted(ports)}")
        return max(first_refusal.values())

    def statuses(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for _, _, status in self.sent:
            counts[status] = counts.get(status, 0) + 1
        return counts


def check_refusal(answer: Answer) -> str | None:
    """What is wrong with a 429, or None: it must carry Retry-After and the error envelope."""
    retry_after = answer.headers.get("retry-after", "")
    error = answer.body.get("error")
    if not retry_after.isdigit() or int(retry_after) < 1:
        return f"429 without a valid Retry-After: {answer.headers}"
    if not isinstance(error, dict) or error.get("code") != "rate_limit_exceeded" or error.get("retryable") is not True:
        return f"429 without the envelope: {answer.body}"
    if error.get("request_id") != answer.headers.get("x-request-id"):
        return f"429 whose envelope's request_id is not x-request-id: {answer.body}"
    return None


async def flood(ports: list[int], api_key: str, rate: float, duration_s: float, lanes: int = 16) -> FloodResult:
    """Open-loop load at ``rate`` requests per second for ``duration_s``, over ``lanes`` connections
    spread round robin across ``ports`` (one API process each): creates, then polls of the task
    created, alternately. A slow answer delays only its lane; the others keep the schedule."""
    result = FloodResult()
    began = time.monotonic()
    interval = lanes / rate
    task_ids: list[str] = []

    async def lane(index: int) -> None:
        port = ports[index % len(ports)]
        connection = Connection(port, api_key)
        try:
            for step in itertools.count():
                at = index / rate + step * interval
                if at >= duration_s:
                    return
                await asyncio.sleep(max(0.0, began + at - time.monotonic()))
                sent = time.monotonic() - began
                if step % 2 == 0 or not task_ids:
                    answer = await connection.request("POST", CREATE_PATH, CREATE_BODY)
                    if answer.status == 201:
                        task_ids.append(str(answer.body["task_id"]))
                else:
                    answer = await connection.request("GET", f"/v2/tasks/{task_ids[-1]}")
                result.sent.append((sent, port, answer.status))
                if answer.status == 429 and (problem := check_refusal(answer)):
                    result.bad_refusals.append(problem)
        finally:
            connection.close()

    await asyncio.gather(*(lane(index) for index in range(lanes)))
    return result


async def steady_client(ports: list[int], api_key: str, rate: float, duration_s: float) -> list[float]:
    """The second account at its normal pace (``rate`` per second, one request at a time, round
    robin over ``ports`` as a balancer would spread it): the latency in seconds of each request, a
    balance read, a create and a poll of its task in turn."""
    connections = [Connection(port, api_key) for port in ports]
    latencies: list[float] = []
    task_id: str | None = None
    began = time.monotonic()
    try:
        for step in itertools.count():
            at = step / rate
            if at >= duration_s:
                break
            await asyncio.sleep(max(0.0, began + at - time.monotonic()))
            connection = connections[step % len(connections)]
            start = time.perf_counter()
            if step % 3 == 0:
                answer = await connection.request("GET", "/v2/balance")
            elif step % 3 == 1 or task_id is None:
                answer = await connection.request("POST", CREATE_PATH, CREATE_BODY)
                task_id = str(answer.body.get("task_id", task_id))
            else:
                answer = await connection.request("GET", f"/v2/tasks/{task_id}")
            latencies.append(time.perf_counter() - start)
            if answer.status >= 400:
                raise AssertionError(f"the second account was refused: {answer.status} {answer.body}")
    finally:
        for connection in connections:
            connection.close()
    return latencies


def percentile(values: list[float], q: float) -> float:
    """The ``q`` quantile (0..1), nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]


def summary_ms(latencies: list[float]) -> str:
    return (f"p50 {statistics.median(latencies) * 1000:.1f} ms, p99 {percentile(latencies, 0.99) * 1000:.1f} ms "
            f"({len(latencies)} requests)")


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident memory so far (VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc (Linux only)")


def current_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc (Linux only)")
