"""The closed loop: iteration state on disk, design, screening, acquisition, relabelling."""

from genmat.loop.closed_loop import ClosedLoop, LoopConfig
from genmat.loop.design import DesignResult, design

__all__ = ["ClosedLoop", "DesignResult", "LoopConfig", "design"]
