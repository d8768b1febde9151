"""edgeclf.train: the desktop trainer (TensorFlow/Keras). Imports TensorFlow lazily, inside functions."""
