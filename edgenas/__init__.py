"""edgenas: find, prove and ship small image classifiers for edge devices.

The Python API. Importing this package does not import torch; the functions that need it import it.
"""

from .errors import EdgeNASError

__version__ = "0.1.0"
__all__ = ["EdgeNASError", "__version__"]
