"""Make the package's backend files from trained weights: ONNX (fp32), and optionally INT8 and OpenVINO.

ONNX comes from Ultralytics' own exporter, run offline (skyops.training.ultra: no network, no
pip-install at run time) with:
- opset 17 (OPSET): the newest opset every runtime a package may meet supports: ONNX Runtime
  since 1.11, OpenVINO, TensorRT 8.5+; Ultralytics itself settled on 17 for torch 2.0-2.3 after 18
  and 19 broke exports, ONNX Runtime's CUDA provider has no Resize-19 kernel, and its static INT8
  quantisation refuses opset 21 and later. Nothing YOLO11 uses needs a newer one.
- a static input (1, 3, imgsz, imgsz) and no NMS in the graph: the server letterboxes to that size
  and runs NMS itself, with per-request thresholds.
- the graph simplified here with onnxslim (Ultralytics' `simplify=True` calls the same tool but
  only warns when it fails; an unsimplified graph must not pass silently).
- Ultralytics' export date dropped from the graph's metadata, so the same weights give the same bytes.

The exporter writes its file beside the weights it is given, so it is given a private copy: a
step's inputs are never written to.

INT8 is ONNX Runtime's static quantisation (QDQ format) calibrated on training images. Only the
convolutions are quantised, outside the DFL box decoder: the head's output concatenates box
coordinates in pixels (0..imgsz) with class scores (0..1), and one 8-bit scale over both would
round every score to nothing. Activations are unsigned, weights signed and per channel (U8S8): on
CPUs without VNNI (AVX2 only, as here) ONNX Runtime's signed-activation kernels are slower than fp32.

OpenVINO is `openvino.convert_model` of the simplified ONNX, saved with OpenVINO's defaults (weights
stored as fp16, decompressed when compiled); the inference precision is the device's default.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from skyops.errors import ConfigError

OPSET = 17
INPUT = "images"  # the graph's input name (Ultralytics'), as metadata.json records it
DROPPED_METADATA = ("date",)  # Ultralytics' metadata_props that change on every export
INT8_ONLY_OPS = ("Conv",)  # node types quantised; everything else stays float (see the module docstring)
INT8_KEEP_FLOAT = "/dfl/"  # node-name part of the DFL box decoder, kept float


def export_onnx(weights: Path, target: Path, *, imgsz: int, names: list[str], state_dir: Path) -> dict[str, Any]:
    """Export `weights` (a YOLO11 detect .pt) to a simplified ONNX file at `target`.

    Args:
        weights: the trained weights (best.pt); read only.
        target: the .onnx file to write.
        imgsz: the square input size in pixels (the training size).
        names: the class names the package will list (training.json's); the weights must have the same.
        state_dir: the project's state dir (Ultralytics' private offline settings live there).

    Returns:
        The artifact's details for metadata.json: opset, input name, shape, dtype, output name and shape.

    Raises:
        DataValidationError: the weights cannot be loaded, or are not a detection model (load_detector).
        ConfigError: the weights' classes are not `names`, or the graph is not the expected shape.
    """
    from skyops.serving.export_runtime import load_detector
    from skyops.training.ultra import import_ultralytics

    import_ultralytics(state_dir)
    import onnx  # heavy imports, only for an export
    import onnxslim

    with tempfile.TemporaryDirectory(prefix="skyops-export-") as tmp:
        private = Path(tmp) / "best.pt"
        shutil.copyfile(weights, private)  # the exporter writes best.onnx beside the weights it is given
        model = load_detector(private, shown_as=weights)
        own = [model.names[i] for i in sorted(model.names)]
        if own != names:
            raise ConfigError(
                f"weights {weights} detect {len(own)} classes {own}, but training.json beside them names {len(names)}: {names}",
                hint="the model folder is damaged: run the pipeline again with --no-cache",
            )
        exported = model.export(
            format="onnx", imgsz=imgsz, opset=OPSET, dynamic=False, nms=False, simplify=False, half=False, batch=1, device="cpu"
        )
        graph = onnx.load(str(exported))
    graph = onnxslim.slim(graph)
    kept = [prop for prop in graph.metadata_props if prop.key not in DROPPED_METADATA]
    del graph.metadata_props[:]
    graph.metadata_props.extend(kept)
    onnx.checker.check_model(graph)
    details = _io_details(graph, imgsz=imgsz, classes=len(names), source=weights)
    target.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(graph, str(target))
    return details


def _io_details(graph: Any, *, imgsz: int, classes: int, source: Path) -> dict[str, Any]:
    """The graph's input and output, checked against the package contract."""

    def shape(value: Any) -> list[int]:
        return [int(d.dim_value) for d in value.type.tensor_type.shape.dim]

    (inp,), (out,) = graph.graph.input, graph.graph.output
    expected_in = [1, 3, imgsz, imgsz]
    problems = []
    if inp.name != INPUT or shape(inp) != expected_in:
        problems.append(f"input {inp.name} {shape(inp)}, expected {INPUT} {expected_in}")
    out_shape = shape(out)
    if len(out_shape) != 3 or out_shape[:2] != [1, 4 + classes]:
        problems.append(f"output {out.name} {out_shape}, expected [1, {4 + classes}, anchors] (the raw head, no NMS)")
    if problems:
        raise ConfigError(f"the ONNX export of {source} has an unexpected graph: " + "; ".join(problems), hint="report it with the weights")
    return {"opset": OPSET, "input": INPUT, "shape": expected_in, "dtype": "float32", "output": out.name, "output_shape": out_shape}


def quantize_int8(onnx_file: Path, target: Path, calibration: Iterable[np.ndarray]) -> dict[str, Any]:
    """Write an INT8 (QDQ) copy of `onnx_file` to `target`, calibrated on `calibration` inputs.

    Args:
        onnx_file: the fp32 model (as export_onnx writes it).
        target: the .onnx file to write.
        calibration: preprocessed inputs, each (1, 3, S, S) float32, as the server feeds the model.

    Returns:
        The artifact's details for metadata.json.
    """
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    inputs = list(calibration)

    class Reader(CalibrationDataReader):
        """Feeds each calibration input once; ONNX Runtime may rewind it for another pass."""

        def __init__(self) -> None:
            self._next: Iterator[np.ndarray] = iter(inputs)

        def get_next(self) -> dict[str, np.ndarray] | None:
            x = next(self._next, None)
            return None if x is None else {INPUT: x}

        def rewind(self) -> None:
            self._next = iter(inputs)

    graph = onnx.load(str(onnx_file))
    float_nodes = [n.name for n in graph.graph.node if n.op_type not in INT8_ONLY_OPS or INT8_KEEP_FLOAT in n.name]
    shape = [int(d.dim_value) for d in graph.graph.input[0].type.tensor_type.shape.dim]
    del graph
    quantize_static(
        str(onnx_file),
        str(target),
        Reader(),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        nodes_to_exclude=float_nodes,
    )
    return {
        "opset": OPSET,
        "input": INPUT,
        "shape": shape,
        "dtype": "float32",  # the graph's input: quantisation happens inside it
        "quantization": {"format": "QDQ", "activations": "uint8", "weights": "int8 per channel", "calibration_images": len(inputs)},
    }


def convert_openvino(onnx_file: Path, target_dir: Path) -> dict[str, Any]:
    """Convert `onnx_file` to OpenVINO IR in `target_dir` (model.xml + model.bin).

    Returns:
        The artifact's details for metadata.json (the .bin's sha256 is in the package's `files`).
    """
    import openvino as ov

    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="skyops-openvino-") as tmp:
        # The IR records the name of the file it was converted from: a fixed one keeps it the same.
        source = Path(tmp) / "model.onnx"
        shutil.copyfile(onnx_file, source)
        model = ov.convert_model(str(source))
    ov.save_model(model, str(target_dir / "model.xml"))
    shape = [int(d) for d in model.inputs[0].get_shape()]
    return {"input": INPUT, "shape": shape, "dtype": "float32", "runtime": ov.get_version()}
