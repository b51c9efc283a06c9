"""Groups images from concurrent tasks into one model run, on a thread of its own.

Everything CPU-bound (image decoding, the model, CTC decoding) happens on that thread, so the event
loop only hands bytes over and awaits a future. onnxruntime releases the GIL while it runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from dataclasses import dataclass

from PIL import Image

from cracker.solvers.ocr.decoding import Hints, Reading
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.preprocess import UnreadableImage
from cracker.solvers.ocr.preprocess import decode as decode_image
from cracker.solvers.ocr.reader import OcrReader

log = logging.getLogger("cracker.ocr")


@dataclass(slots=True)
class _Request:
    image: bytes
    hints: Hints
    result: concurrent.futures.Future[Reading | None]
    #: The model to read with; None: the batcher's own (the general model).
    reader: OcrReader | None = None


_STOP = object()


class InferenceBatcher:
    """``await recognise(image, hints)`` from any number of tasks; one thread serves them in batches.

    A batch closes when it holds ``max_batch`` images or ``max_wait_s`` after its first arrived,
    whichever comes first: a lone request waits at most that long, a burst shares one model run.
    """

    def __init__(self, model: OcrModel | None = None, *, max_batch: int = 32, max_wait_s: float = 0.002,
                 threads: int = 1, second_look: bool = True) -> None:
        self._model = model
        self._second_look = second_look
        self._reader: OcrReader | None = None
        self._threads = threads
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: queue.SimpleQueue[_Request | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        #: Batches read so far and the images in them (their ratio is the mean batch size; a batch with
        #: doubtful readings takes a second model run for their other views).
        self.runs = 0
        self.images = 0

    @property
    def reader(self) -> OcrReader:
        if self._reader is None:
            raise RuntimeError("InferenceBatcher.start() was not called")
        return self._reader

    async def start(self) -> None:
        if self._thread is not None:
            return
        if self._model is None:
            # Loading parses and optimises the graph (tens of ms): not on the event loop.
            self._model = await asyncio.to_thread(OcrModel, threads=self._threads)
        self._reader = OcrReader(self._model, second_look=self._second_look)
        self._thread = threading.Thread(target=self._serve, name="ocr-batcher", daemon=True)
        self._thread.start()

    async def close(self) -> None:
        if self._thread is None:
            return
        self._queue.put(_STOP)
        await asyncio.to_thread(self._thread.join)
        self._thread = None

    async def recognise(self, image: bytes, hints: Hints, reader: OcrReader | None = None) -> Reading | None:
        """The reading of an image, None if the hints allow no text; ``UnreadableImage`` if it is not one.

        ``reader``: read with that model (a named one) instead of the batcher's own; a batch of mixed
        models runs once per model, each on the images that asked for it.
        """
        if self._thread is None:
            raise RuntimeError("InferenceBatcher.start() was not called")
        request = _Request(image, hints, concurrent.futures.Future(), reader)
        self._queue.put(request)
        return await asyncio.wrap_future(request.result)

    def _serve(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            assert isinstance(first, _Request)
            batch = [first]
            closes_at = time.monotonic() + self.max_wait_s
            stop = False
            while len(batch) < self.max_batch:
                try:
                    item = self._queue.get(timeout=max(0.0, closes_at - time.monotonic()))
                except queue.Empty:
                    break
                if item is _STOP:
                    stop = True
                    break
                assert isinstance(item, _Request)
                batch.append(item)
            # One model run per model the batch's requests asked for (in the order they first came).
            by_reader: dict[int, list[_Request]] = {}
            for request in batch:
                by_reader.setdefault(id(request.reader), []).append(request)
            for group in by_reader.values():
                self._run(group)
            if stop:
                return

    def _run(self, batch: list[_Request]) -> None:
        ready: list[tuple[_Request, Image.Image]] = []
        for request in batch:
            if request.result.cancelled():  # the task ended (deadline, cancel) while it waited
                continue
            try:
                ready.append((request, decode_image(request.image)))
            except UnreadableImage as exc:
                _settle(request.result, error=exc)
        if not ready:
            return
        self.runs += 1
        self.images += len(ready)
        reader = ready[0][0].reader or self.reader
        try:
            readings = reader.read([image for _, image in ready], [request.hints for request, _ in ready])
        except Exception as exc:  # never let one bad batch kill the thread every later task needs
            log.exception("OCR batch of %d failed", len(ready))
            for request, _ in ready:
                _settle(request.result, error=exc)
            return
        for (request, _), reading in zip(ready, readings, strict=True):
            _settle(request.result, reading)


def _settle(
    future: concurrent.futures.Future[Reading | None], reading: Reading | None = None, error: Exception | None = None
) -> None:
    """Answer a request unless its task gave up on it meanwhile (a cancelled future refuses answers)."""
    try:
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(reading)
    except concurrent.futures.InvalidStateError:
        pass
