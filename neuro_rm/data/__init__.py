"""Data: SSC/SHD spike files through tonic, the cochlea encoder, the bundled spiking FSDD and faces."""

from neuro_rm.data.bundled import bundled_faces_path, bundled_speech_path, load_bundled_speakers
from neuro_rm.data.cochlea import Cochlea, CochleaConfig, Spikes
from neuro_rm.data.faces import Faces, load_faces
from neuro_rm.data.frames import FrameConfig
from neuro_rm.data.hsd import SHD, SSC, SpikeFile, open_folder
from neuro_rm.data.speakers import (
    SpeakerFrames,
    SpeakerSplits,
    SplitConfig,
    load_folder_speakers,
    load_speakers,
    speaker_splits,
)
from neuro_rm.data.spikefile import SpikeFileError, SpikeFileInfo, read_info, validate_file, write_spike_file
from neuro_rm.data.summary import format_summary, summarize

__all__ = [
    "SHD",
    "SSC",
    "Cochlea",
    "CochleaConfig",
    "Faces",
    "FrameConfig",
    "SpeakerFrames",
    "SpeakerSplits",
    "SpikeFile",
    "SpikeFileError",
    "SpikeFileInfo",
    "Spikes",
    "SplitConfig",
    "bundled_faces_path",
    "bundled_speech_path",
    "format_summary",
    "load_bundled_speakers",
    "load_faces",
    "load_folder_speakers",
    "load_speakers",
    "open_folder",
    "read_info",
    "speaker_splits",
    "summarize",
    "validate_file",
    "write_spike_file",
]
