"""Built-in OCR for ``image-to-text`` tasks: a small CNN + GRU + CTC model run with onnxruntime."""

from cracker.solvers.ocr.batcher import InferenceBatcher
from cracker.solvers.ocr.decoding import Hints, Reading
from cracker.solvers.ocr.model import OcrModel
from cracker.solvers.ocr.solver import OcrSolver

__all__ = ["Hints", "InferenceBatcher", "OcrModel", "OcrSolver", "Reading"]
