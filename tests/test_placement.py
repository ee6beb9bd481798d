import subprocess
import sys

import pytest
import torch

from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.learning import TrainConfig
from neuro_rm.learning.placement import model_device, resolve_device
from neuro_rm.models import RSNNConfig

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


def test_cpu_is_the_default_and_auto_falls_back_to_it():
    assert resolve_device(None) == resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto") == torch.device("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be one of"):
        resolve_device("tpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message a machine without CUDA gives")
def test_cuda_without_a_gpu_is_a_one_line_error():
    with pytest.raises(ValueError, match="no CUDA GPU is available"):
        resolve_device("cuda")
    proc = subprocess.run([sys.executable, "-m", "neuro_rm.cli", "verify", "test:0", "--claim", "x", "--device", "cuda"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no CUDA GPU" in proc.stderr and "Traceback" not in proc.stderr


def test_a_command_not_yet_on_the_gpu_refuses_it_in_one_line(monkeypatch):
    from neuro_rm import cli

    monkeypatch.setattr(cli, "resolve_device", lambda name: torch.device("cuda"))  # as on a GPU machine
    assert cli.main(["demo", "--device", "cuda", "--fast"]) == 2


def _deployed(tiny_speech, device):
    train, val = tiny_speech["train"], tiny_speech["val"]
    auth, _ = SpeakerAuthenticator.pretrain(["a", "b", "c"], train.of_classes([0, 1, 2]), val.of_classes([0, 1, 2]),
                                            RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=3),
                                            TrainConfig(epochs=3, lr=5e-3, batch_size=32), device=device)
    auth.deploy()
    return auth


def test_explicit_cpu_placement_keeps_everything_on_the_cpu(tiny_speech):
    auth = _deployed(tiny_speech, "cpu")
    assert model_device(auth.model) == torch.device("cpu") and auth.buffers.replay.x.device.type == "cpu"


@needs_cuda
def test_the_lifecycle_runs_on_the_gpu_and_agrees_with_the_cpu(tiny_speech):
    gpu, cpu = _deployed(tiny_speech, "cuda"), _deployed(tiny_speech, "cpu")
    assert model_device(gpu.model).type == "cuda" and gpu.buffers.replay.x.device.type == "cuda"
    test = tiny_speech["test"].of_classes([0, 1, 2])
    agree = (gpu.scores(test.x).argmax(1) == cpu.scores(test.x).argmax(1)).float().mean()
    assert agree > 0.9  # same seeds; float order differs between devices
    gpu.enroll("d", tiny_speech["train"].of_classes([3]).x, tiny_speech["val"].of_classes([3]).x,
               config=TrainConfig(epochs=2, lr=5e-3, batch_size=32))
    gpu.calibrate()
    assert gpu.verify(test.x[0], "a")["claim"] == "a"
