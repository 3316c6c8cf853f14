"""MACAW: offline meta-reinforcement learning with advantage weighting.

A reproducible pipeline: behaviour-policy data (``macaw.behaviour``), HDF5 buffers
(``macaw.data``), task families (``macaw.envs``) and figures (``macaw.plotting``).
"""

__version__ = "0.1.0"
