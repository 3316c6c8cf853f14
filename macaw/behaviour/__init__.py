"""Behaviour policies: per-task SAC/TD3 trained as one batched ensemble, and buffer export."""

from macaw.behaviour.trainer import BehaviourConfig, train_behaviour

__all__ = ["BehaviourConfig", "train_behaviour"]
