"""gattanet_sim: a CNN plus a brain-like global attention region, simulated over time."""

from gattanet_sim.models import build_model, list_models

__version__ = "0.1.0"
__all__ = ["build_model", "list_models", "__version__"]
