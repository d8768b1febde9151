"""edgeclf.bench: `edgeclf bench`, every bundle on every installed runtime in one table.

It sits beside `edgeclf.edge` (which it measures) and never inside it: the bench may use Keras (agreement
with the trained model, when TensorFlow is installed), rich and matplotlib, none of which a Pi runs. The
measuring children (`footprint`, `worker`) import only numpy, OpenCV and an interpreter, so the bench still
runs on a Pi.
"""
