"""neuro_rm: learning and forgetting on resistive-memory crossbars with digital LoRA branches."""

from neuro_rm.crossbar import Crossbar, CrossbarConfig
from neuro_rm.device import CellArray, DeviceConfig
from neuro_rm.energy import EnergyModel, Ledger
from neuro_rm.layers import (
    HybridConv2d,
    HybridLinear,
    activate_adapter,
    active_adapters,
    add_adapter,
    analogize,
    delete_adapter,
    disable_adapters,
    fuse_adapters,
    merge,
    merge_adapter,
    remove_adapter,
    set_active,
    set_adapter,
)
from neuro_rm.lora import AdapterConfig, LoRAAdapter
from neuro_rm.plasticity import HookBus, PlasticityEvent, Recorder

__all__ = [
    "AdapterConfig",
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
    "activate_adapter",
    "active_adapters",
    "add_adapter",
    "analogize",
    "delete_adapter",
    "disable_adapters",
    "fuse_adapters",
    "merge",
    "merge_adapter",
    "remove_adapter",
    "set_active",
    "set_adapter",
]
__version__ = "0.1.0"
