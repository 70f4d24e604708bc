"""Files in and out: atomic writes, the safe unpickler, image and video reading, mesh files.

The bottom of the package (above :mod:`handssca.frames` and :mod:`handssca.messages` only): every
layer reads and writes files through it."""
