"""edgeclf.edge: the runner for a Raspberry Pi. Imports numpy, OpenCV and a TFLite interpreter only."""
