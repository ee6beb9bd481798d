"""Networks built from ordinary torch layers, ready for ``neuro_rm.analogize``."""

from neuro_rm.models.heads import GrowableHead
from neuro_rm.models.rsnn import RSNNConfig, SpeakerRSNN

__all__ = ["GrowableHead", "RSNNConfig", "SpeakerRSNN"]
