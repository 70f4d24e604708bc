"""handssca: 3D hand mesh reconstruction from one RGB image with the HandSSCA network.

Importing the package does no work: no file loading, no kernel compilation, no GL context.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
