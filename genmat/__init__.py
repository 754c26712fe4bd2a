"""genmat: materials inverse design with physics oracles, conditional generative
models, validators and a closed loop.

Top-level functions for scripts: :func:`genmat.design` and :func:`genmat.simulate`
(see ``genmat.api``); the library's parts live in the subpackages.
"""

from genmat.api import design, simulate

__version__ = "0.1.0"
__all__ = ["design", "simulate", "__version__"]
