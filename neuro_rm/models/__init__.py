"""Networks built from ordinary torch layers, ready for ``neuro_rm.analogize``."""

from neuro_rm.models.cnn import FaceCNN, FaceCNNConfig
from neuro_rm.models.heads import GrowableHead
from neuro_rm.models.mixer import FaceMixer, MixerConfig
from neuro_rm.models.rsnn import RSNNConfig, SpeakerRSNN

__all__ = ["FaceCNN", "FaceCNNConfig", "FaceMixer", "GrowableHead", "MixerConfig", "RSNNConfig", "SpeakerRSNN"]
