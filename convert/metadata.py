"""Standard TFLite model metadata in every converted variant, written by MediaPipe's metadata writer.

What other runtimes read (MediaPipe Tasks' `ImageClassifier`, Android's Task library): the model's name and
description, the input image (RGB, the normalization `(pixel - mean) / std` that is the manifest's
`pixel * scale + offset`: mean = -offset / scale, std = 1 / scale), the labels file associated with the
output, and, when one is given, a score calibration (temperature T on a sigmoid/two-class output:
INVERSE_LOGISTIC, slope 1/T, so each score becomes sigmoid(logit(p) / T)).

The writer is `mediapipe.tasks.python.metadata.metadata_writers` (desktop side only: the edge reads the
manifest and never this metadata; `tests/test_layout.py`). Which mediapipe: the releases that install beside
TensorFlow 2.21 and opencv-python-headless are the ctypes builds (0.10.30 on), and of those only 0.10.31 does
not pull opencv-contrib-python (whose `cv2` would overwrite the headless one). Every ctypes build ships the
writer without its one native helper, `mediapipe.tasks.cc.metadata.python._pywrap_metadata_version`
(the module is imported at the top of `metadata.py` and missing from the wheels), so importing the writer
fails. `_min_parser_version` below stands in for it: a port of MediaPipe's
`mediapipe/tasks/cc/metadata/metadata_version.cc` (the smallest metadata parser version that understands
every field present), used only when the native module is absent. The metadata written is then read back
by MediaPipe's own reader and by its `ImageClassifier` in tests/test_ecosystem.py.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, replace
from typing import Any, Sequence

from edgeclf.errors import UsageError
from edgeclf.preprocess import PreprocessSpec

LABELS_FILE = "labels.txt"
INSTALL_HINT = "pip install 'edgeclf[train]' (mediapipe 0.10.31), or convert with --no-metadata"
_NATIVE = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


@dataclass(frozen=True)
class ModelInfo:
    """What the metadata says: name, description, labels in output order, preprocessing, calibration."""

    name: str
    description: str
    labels: tuple[str, ...]
    preprocess: PreprocessSpec
    temperature: float | None = None  # a fitted temperature (binary tasks only: a per-score sigmoid), or None
    feature_output: str | None = None  # the description of a second output (the feature distance), or None

    @property
    def norm_mean(self) -> float:
        """MediaPipe's mean: the pixel value that becomes 0 (`pixel * scale + offset`)."""
        return 0.0 - self.preprocess.offset / self.preprocess.scale + 0.0  # + 0.0: no "-0.0" in the metadata

    @property
    def norm_std(self) -> float:
        return 1.0 / self.preprocess.scale


def model_info(labels: Sequence[str], task: str, binary_output: str, preprocess: PreprocessSpec, arch: str,
               variant: str, temperature: float | None = None) -> ModelInfo:
    """The metadata of one variant. A single sigmoid is one class to a metadata reader: its label is the
    positive one (labels[1]) and its score P(labels[1]); two-class and softmax outputs name every label."""
    names = tuple(labels)
    sigmoid = task == "binary" and binary_output == "sigmoid"
    if sigmoid:
        names = (names[1],)
    crop = {"center": "centre-cropped to a square", "letterbox": "padded to a square with grey bars",
            "none": "squeezed to a square"}[preprocess.crop]
    output = (f"one sigmoid, P({labels[1]}) (P({labels[0]}) is 1 minus it)" if sigmoid
              else "one probability per label, in labels.txt order")
    description = (f"edgeclf image classifier ({arch}, {variant}): {', '.join(labels)}. Input: RGB "
                   f"{preprocess.height}x{preprocess.width}, frame {crop}, bilinear resize, pixel * "
                   f"{preprocess.scale:.8g} + {preprocess.offset:.8g}. Output: {output}.")
    if temperature is not None and task != "binary":
        temperature = None  # a softmax's temperature is not a per-class calibration; the manifest keeps it
    return ModelInfo(f"edgeclf {arch} {variant}", description, names, preprocess, temperature)


# ---- MediaPipe's GetMinimumMetadataParserVersion, for the wheels that lack it --------------------------

def _min_parser_version(buffer: bytes) -> str:
    """The smallest metadata parser version that reads every field present (metadata_version.cc's rules)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    md = fb.ModelMetadataT.InitFromObj(fb.ModelMetadata.GetRootAsModelMetadata(bytearray(buffer), 0))
    found = [(1, 0, 0)]

    def files(items: Sequence[Any] | None) -> None:
        for f in items or ():
            if f.type == fb.AssociatedFileType.VOCABULARY:
                found.append((1, 0, 1))
            if f.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
                found.append((1, 4, 0))
            if f.version is not None:
                found.append((1, 4, 1))

    def units(items: Sequence[Any] | None) -> None:
        newer = {fb.ProcessUnitOptions.BertTokenizerOptions: (1, 1, 0),
                 fb.ProcessUnitOptions.SentencePieceTokenizerOptions: (1, 1, 0),
                 fb.ProcessUnitOptions.RegexTokenizerOptions: (1, 2, 1)}
        for u in items or ():
            if u.optionsType in newer:
                found.append(newer[u.optionsType])

    def tensors(items: Sequence[Any] | None) -> None:
        for t in items or ():
            files(t.associatedFiles)
            units(t.processUnits)
            if t.content is not None and t.content.contentPropertiesType == fb.ContentProperties.AudioProperties:
                found.append((1, 3, 0))

    for sg in md.subgraphMetadata or ():
        tensors(sg.inputTensorMetadata)
        tensors(sg.outputTensorMetadata)
        files(sg.associatedFiles)
        for present, version in ((sg.inputProcessUnits, (1, 1, 0)), (sg.outputProcessUnits, (1, 1, 0)),
                                 (sg.inputTensorGroups, (1, 2, 0)), (sg.outputTensorGroups, (1, 2, 0)),
                                 (sg.customMetadata, (1, 5, 0))):
            if present is not None:
                found.append(version)
        units(sg.inputProcessUnits)
        units(sg.outputProcessUnits)
    files(md.associatedFiles)
    return ".".join(map(str, max(found)))


def _provide_native_version_module() -> None:
    """Register `_min_parser_version` under the native module's name when the wheel lacks that module."""
    import importlib.util

    if _NATIVE in sys.modules:
        return
    try:
        if importlib.util.find_spec(_NATIVE) is not None:
            return
    except ModuleNotFoundError:  # a parent package (mediapipe.tasks.cc) is missing too
        pass
    parts = _NATIVE.split(".")
    for i in range(3, len(parts)):  # mediapipe.tasks.cc, ...cc.metadata, ...metadata.python
        name = ".".join(parts[:i])
        if name not in sys.modules:
            pkg = types.ModuleType(name)
            pkg.__path__ = []  # a namespace with nothing else in it
            sys.modules[name] = pkg
    native = types.ModuleType(_NATIVE)
    native.GetMinimumMetadataParserVersion = _min_parser_version  # type: ignore[attr-defined]
    sys.modules[_NATIVE] = native


def _writer_modules() -> tuple[Any, Any]:
    """(metadata_writer, metadata) from mediapipe, or a UsageError saying how to get them."""
    try:
        import mediapipe  # noqa: F401 - the package itself first: a missing install is one line
    except ImportError:
        raise UsageError(f"writing TFLite metadata needs mediapipe, which is not installed here; {INSTALL_HINT}") from None
    _provide_native_version_module()
    from mediapipe.tasks.python.metadata import metadata
    from mediapipe.tasks.python.metadata.metadata_writers import metadata_writer

    return metadata_writer, metadata


def check_writer() -> None:
    """Fail before any conversion when metadata is asked for and the writer cannot be imported."""
    _writer_modules()


def add_metadata(model_bytes: bytes, info: ModelInfo) -> bytes:
    """`model_bytes` with the image-classifier metadata and its labels file packed in (a new flatbuffer)."""
    mw, _ = _writer_modules()

    class Writer(mw.MetadataWriter):  # type: ignore[misc,valid-type]
        def _export_calibration_file(self, filename: str, calibrations: list) -> str:
            # The writer ends every line with a newline, and MediaPipe's reader (0.10.31) takes the empty text
            # after the last one for one more score ("Mismatch between number of sigmoids (3) and number of
            # elements in the input scores tensor (2)"): the file is written without it.
            path = super()._export_calibration_file(filename, calibrations)
            with open(path, encoding="utf-8") as f:
                text = f.read()
            with open(path, "w", encoding="utf-8") as f:
                f.write(text.rstrip("\n"))
            return path

    writer = Writer.create(bytearray(model_bytes))
    writer.add_general_info(info.name, info.description)
    writer.add_image_input([info.norm_mean], [info.norm_std])
    calibration = None
    if info.temperature is not None:  # sigmoid(logit(p) / T) per score: exact for [1 - p, p] and for p alone
        param = mw.CalibrationParameter(scale=1.0, slope=1.0 / info.temperature, offset=0.0)
        calibration = mw.ScoreCalibration(mw.ScoreCalibration.transformation_types.INVERSE_LOGISTIC,
                                          [param] * len(info.labels))
    writer.add_classification_output(mw.Labels().add(list(info.labels), exported_filename=LABELS_FILE),
                                     score_calibration=calibration)
    if info.feature_output is not None or _outputs(model_bytes) == 2:  # the distance (edgeclf.convert.features)
        from .features import DISTANCE_DESCRIPTION, DISTANCE_NAME

        writer.add_feature_output(DISTANCE_NAME, info.feature_output or DISTANCE_DESCRIPTION)
    out, _json = writer.populate()
    del writer  # its temp folder is removed now, not by __del__ at interpreter exit
    return bytes(out)


def _outputs(model_bytes: bytes) -> int:
    """How many outputs the model's subgraph has."""
    from mediapipe.tasks.metadata import schema_py_generated as fb

    return int(fb.Model.GetRootAsModel(model_bytes, 0).Subgraphs(0).OutputsLength())


def with_fitted_temperature(raw: bytes, info: ModelInfo, temperature: float, x: Any, checked: Any,
                            quiet: bool = True, output: str | None = None) -> bytes:
    """The raw converted model with metadata that includes the temperature fitted after the checks.

    The checks ran on the same model with the same metadata minus the calibration; this runs the new file
    on the same inputs and refuses it unless every output is identical, so what was checked is what is written.
    """
    import numpy as np

    from edgeclf.errors import ModelError

    from .verify import tflite_probs

    out = add_metadata(raw, replace(info, temperature=temperature))
    probs = tflite_probs(out, x, quiet, output)[0]  # output: the probabilities' name when there are two
    if not np.array_equal(probs, checked):
        raise ModelError(f"{info.name}: the model with its score calibration metadata gives other outputs than the "
                         "one checked; convert with --no-metadata and report this")
    return out


@dataclass(frozen=True)
class ReadBack:
    """What a metadata reader finds in a model: the metadata JSON, the labels, the packed files' contents."""

    json: dict[str, Any]
    labels: tuple[str, ...]
    files: dict[str, bytes]


def read_metadata(model_bytes: bytes) -> ReadBack | None:
    """The metadata read back by MediaPipe's `MetadataDisplayer`, or None when the model has none."""
    import json

    _, metadata = _writer_modules()
    try:
        shown = metadata.MetadataDisplayer.with_model_buffer(bytearray(model_bytes))
    except ValueError:  # "The model does not have metadata."
        return None
    files = {name: bytes(shown.get_associated_file_buffer(name)) for name in shown.get_packed_associated_file_list()}
    labels = tuple(files[LABELS_FILE].decode("utf-8").splitlines()) if LABELS_FILE in files else ()
    return ReadBack(json.loads(shown.get_metadata_json()), labels, files)
