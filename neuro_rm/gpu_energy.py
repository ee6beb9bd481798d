"""The GPU baseline measured, not assumed: NVML's energy counter around repeated inference passes.

Measured like Blouw et al. 2019 (arXiv 1812.01739): dynamic energy, the energy counter's increase over
the passes minus the idle power (read over an equal quiet interval before, after the GPU has settled from
the warm-up) times their duration.  The counter is the whole board's: other processes on the GPU are
counted too.  Only on a machine with a CUDA GPU, the ``pynvml`` package and a working energy counter;
elsewhere (or when NVML fails: driver mismatch, no counter on a vGPU or MIG slice, no dynamic energy above
idle) ``measure_inference`` raises ``GpuUnavailable`` with the reason, and callers report it as skipped.
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
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as error:
        raise GpuUnavailable(f"NVML failed: {error}") from error
    return pynvml


def measure_inference(model: nn.Module, x: torch.Tensor, batch: int, min_seconds: float = 2.0,
                      settle_seconds: float = 2.0) -> GpuMeasurement:
    """Dynamic joules per inference of ``model`` (a digital network) at ``batch`` on GPU 0."""
    nvml = _nvml()
    try:
        return _measure(nvml, model, x, batch, min_seconds, settle_seconds)
    except nvml.NVMLError as error:
        raise GpuUnavailable(f"NVML failed: {error}") from error


def _measure(nvml, model: nn.Module, x: torch.Tensor, batch: int, min_seconds: float,  # noqa: ANN001 - pynvml
             settle_seconds: float) -> GpuMeasurement:
    handle = nvml.nvmlDeviceGetHandleByIndex(0)
    net = copy.deepcopy(model).cuda().eval()
    inputs = x[:batch].cuda()
    if len(inputs) < batch:
        inputs = inputs.repeat((batch + len(inputs) - 1) // len(inputs), *[1] * (inputs.dim() - 1))[:batch]
    with torch.no_grad():
        net(inputs)  # warm-up: kernels chosen and loaded outside the measurement
        torch.cuda.synchronize()
        time.sleep(settle_seconds)  # clocks fall back from the warm-up's boost before idle is read
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
    dynamic_j = total_j - idle_w * seconds
    if dynamic_j <= 0:
        raise GpuUnavailable(f"no dynamic energy above idle ({total_j:.3g} J in {seconds:.2f} s at {idle_w:.3g} W idle)")
    name = nvml.nvmlDeviceGetName(handle)
    return GpuMeasurement(name.decode() if isinstance(name, bytes) else str(name),
                          datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%MZ"), batch,
                          dynamic_j / (passes * batch), seconds)
