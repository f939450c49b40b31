"""TFDS builders for the data sets the harness ships.

Nothing is imported here, so importing `harness.data.datasets` stays free of TensorFlow.
Import a builder's module to register it with TFDS before `tfds.load`, e.g.
`import harness.data.datasets.elpv` registers `"elpv"`.
"""
