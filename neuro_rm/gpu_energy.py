"""The GPU baseline measured, not assumed: NVML's energy counter around repeated inference passes.

Measured like Blouw et al. 2019 (arXiv 1812.01739): dynamic energy, the energy counter's increase over
the passes minus the idle power (read over an equal quiet interval before) times their duration.  Only
on a machine with a CUDA GPU and the ``pynvml`` package; elsewhere ``measure_inference`` raises
``GpuUnavailable`` with the reason, and callers fall back to the cited figure.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from datetime import datetime, timezone

import torch
from torch import nn


class GpuUnavailable(RuntimeError):
    """No CUDA device or no NVML here: the measured GPU baseline cannot be taken."""


@dataclass(frozen=True)
class GpuMeasurement:
    device: str
    date: str
    batch: int
    j_per_inference: float
    seconds: float


def _nvml():  # noqa: ANN202 - the pynvml module
    if not torch.cuda.is_available():
        raise GpuUnavailable("no CUDA device")
    try:
        import pynvml
    except ImportError as error:
        raise GpuUnavailable("pynvml is not installed (pip install nvidia-ml-py)") from error
    pynvml.nvmlInit()
    return pynvml


def measure_inference(model: nn.Module, x: torch.Tensor, batch: int, min_seconds: float = 2.0) -> GpuMeasurement:
    """Dynamic joules per inference of ``model`` (a digital network) at ``batch`` on GPU 0."""
    nvml = _nvml()
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    net = copy.deepcopy(model).cuda().eval()
    inputs = x[:batch].cuda()
    if len(inputs) < batch:
        inputs = inputs.repeat((batch + len(inputs) - 1) // len(inputs), *[1] * (inputs.dim() - 1))[:batch]
    with torch.no_grad():
        net(inputs)  # warm-up: kernels chosen and loaded outside the measurement
        torch.cuda.synchronize()
        idle_mj, start = nvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter()
        time.sleep(min_seconds)
        idle_w = (nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - idle_mj) / 1e3 / (time.perf_counter() - start)
        passes, begin_mj, start = 0, nvml.nvmlDeviceGetTotalEnergyConsumption(handle), time.perf_counter()
        while time.perf_counter() - start < min_seconds:
            net(inputs)
            torch.cuda.synchronize()
            passes += 1
        seconds = time.perf_counter() - start
        total_j = (nvml.nvmlDeviceGetTotalEnergyConsumption(handle) - begin_mj) / 1e3
    dynamic_j = max(total_j - idle_w * seconds, 0.0)
    name = nvml.nvmlDeviceGetName(handle)
    return GpuMeasurement(name.decode() if isinstance(name, bytes) else str(name),
                          datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), batch,
                          dynamic_j / (passes * batch), seconds)
