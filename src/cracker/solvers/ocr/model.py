"""The shipped recognition model: an ONNX file plus a JSON of its alphabet and input size."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime as ort  # type: ignore[import-untyped]

LogProbs = npt.NDArray[np.float32]

_PACKAGE = "cracker.solvers.ocr"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    #: Output class ``i + 1`` is ``alphabet[i]``; class 0 is the CTC blank.
    alphabet: str
    height: int
    width: int


class OcrModel:
    """One onnxruntime session on the CPU; ``run`` may be called from any single thread at a time."""

    def __init__(
        self, model_path: Path | None = None, *, threads: int = 1,
        serialized: tuple[bytes, Mapping[str, object]] | None = None,
    ) -> None:
        """The ONNX file at ``model_path`` (the shipped one when None) with the JSON beside it, or
        ``serialized``: the ONNX bytes and that JSON's content (a named model from the database)."""
        source: str | bytes
        if serialized is not None:
            source, meta = serialized
        else:
            onnx_path = model_path or Path(str(resources.files(_PACKAGE).joinpath("model.onnx")))
            meta = json.loads(onnx_path.with_suffix(".json").read_text(encoding="utf-8"))
            source = str(onnx_path)
        self.info = ModelInfo(alphabet=str(meta["alphabet"]), height=_int(meta["height"]), width=_int(meta["width"]))
        options = ort.SessionOptions()
        # One intra-op thread by default: the service runs other CPU work (proof of work) beside it,
        # and batching, not threads, is how throughput grows.
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self._session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def run(self, batch: npt.NDArray[np.float32]) -> LogProbs:
        """(N, 3, height, width) inputs to (N, T, classes) log-probabilities."""
        outputs = self._session.run(None, {self._input: batch})
        return np.asarray(outputs[0], dtype=np.float32)


def _int(value: object) -> int:
    if not isinstance(value, int | str):
        raise ValueError(f"not a size: {value!r}")
    return int(value)
