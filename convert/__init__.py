"""edgeclf.convert: training run -> verified, quantized TFLite bundles."""
