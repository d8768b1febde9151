"""edgeclf.evaluate: `edgeclf eval`, the accuracy a user will get, on any folder-per-class test set.

A bundle is measured through exactly the edge path `camera` uses (`edgeclf.edge.model.Classifier`: the
same verified load, OpenCV decode, preprocessing and interpreter); a run's Keras model through the same
numpy preprocessing. Figures come with a 95 % interval over subjects (`edgeclf.metrics`), and
`--camera-sim` measures camera-like frames of the test images (`edgeclf.camsim`) instead of the files.
numpy, OpenCV and an interpreter for a bundle (so it runs on a Pi); TensorFlow only for a Keras model;
matplotlib only for the PNG plots.
"""
