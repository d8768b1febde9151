"""edgeclf.convert: training run -> verified, quantized TFLite bundles.

TensorFlow is imported only when a conversion runs, not when this package is imported.
"""

from .pipeline import ConvertConfig, ConvertResult, convert_run
from .quantize import KINDS, QuantizationKind, kinds_from_names
from .report import VariantResult

__all__ = ["KINDS", "ConvertConfig", "ConvertResult", "QuantizationKind", "VariantResult", "convert_run",
           "kinds_from_names"]
