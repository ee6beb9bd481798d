"""neuro_rm: learning and forgetting on resistive-memory crossbars with digital LoRA branches."""

from neuro_rm.crossbar import Crossbar, CrossbarConfig
from neuro_rm.device import CellArray, DeviceConfig
from neuro_rm.energy import EnergyModel, Ledger
from neuro_rm.layers import (
    HybridConv2d,
    HybridLinear,
    add_adapter,
    analogize,
    merge,
    remove_adapter,
    set_active,
)
from neuro_rm.lora import LoRAAdapter
from neuro_rm.plasticity import HookBus, PlasticityEvent, Recorder

__all__ = [
    "CellArray",
    "Crossbar",
    "CrossbarConfig",
    "DeviceConfig",
    "EnergyModel",
    "HookBus",
    "HybridConv2d",
    "HybridLinear",
    "LoRAAdapter",
    "Ledger",
    "PlasticityEvent",
    "Recorder",
    "add_adapter",
    "analogize",
    "merge",
    "remove_adapter",
    "set_active",
]
__version__ = "0.1.0"
