"""edgeclf: from a folder of pictures to a live camera on a Raspberry Pi.

`edgeclf.train` (desktop, TensorFlow) writes a run directory, `edgeclf.convert` turns it into verified
TFLite bundles, `edgeclf.edge` runs a bundle on frames with numpy, OpenCV and a TFLite interpreter only.
The bundle (see `edgeclf.bundle`, its typed parts in `edgeclf.contracts`) is the one contract between them.
Long commands report through one protocol (`edgeclf.progress`); only the CLI draws.
"""

__version__ = "0.1.0"
