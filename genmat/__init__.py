"""genmat: materials inverse design with physics oracles, conditional generative
models, validators and a closed loop.

Top-level functions for scripts: :func:`genmat.design`, :func:`genmat.design_recipes` and
:func:`genmat.simulate`
(see ``genmat.api``); the library's parts live in the subpackages.
"""

from genmat.api import design, design_recipes, simulate

__version__ = "0.1.0"
__all__ = ["design", "design_recipes", "simulate", "__version__"]
