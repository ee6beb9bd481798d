"""A task's energy figures under every technology node and GPU assumption, from counted work.

Each demo calls ``task_energy`` once with what it counted (the training records of its stages, one
measured inference pass, the write ledgers of its LoRA step and of the full-reprogramming baseline) and
gets flat JSON keys: ``energy.<node>.<gpu>.*`` ratios, ``energy.<node>.*`` joules and
``energy.training_j.<stage>`` (the default node).  ``readme_table`` turns those keys into the README
table, the paper's ratios beside ours with the assumption that explains each difference.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import torch
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm import work
from neuro_rm.energy import ADAM_MACS, DEFAULT_NODE, NODES, EnergyModel, Ledger
from neuro_rm.gpu_energy import GpuUnavailable, measure_inference
from neuro_rm.learning.metrics import predict_logits
from neuro_rm.work import PassWork, TrainingWork, backward_of

if TYPE_CHECKING:
    from neuro_rm.models.diffusion import ScheduleConfig

# A training step costs a forward and a backward pass, the backward about twice the forward's work
# (Kaplan et al., "Scaling laws for neural language models", arXiv 2001.08361: C ≈ 6N per token against
# 2N for inference): 3 inference-equivalents, i.e. 3 launches under a per-launch GPU figure.
TRAIN_SAMPLE_INFERENCES = 3


@dataclass(frozen=True)
class GpuAssumption:
    """How a GPU is charged: per MAC at its peak efficiency, or per launch at a cited or measured figure.

    A per-inference figure measured at batch 1 is launch and memory overhead, not arithmetic, so it is
    charged per launch: an inference at batch 1 is one launch per sample (``PassWork.launches_per_sample``
    of them for a sampler), and a training loop pays it per batch, ``TRAIN_SAMPLE_INFERENCES`` for each
    training step's forward and backward, one for each evaluation batch.
    """

    name: str
    label: str
    source: str
    j_per_inference: float | None = None  # joules per launch at batch ``batch`` (None: priced per MAC, peak)
    batch: int | None = None

    def inference_j(self, work: PassWork, energy: EnergyModel) -> float:
        if self.j_per_inference is None:
            return work.gpu_macs * energy.gpu_mac_j
        return work.samples * work.launches_per_sample * self.j_per_inference

    def training_j(self, record: TrainingWork, energy: EnergyModel) -> float:
        if self.j_per_inference is None:
            backward = backward_of(record.forward)
            macs = record.forward.gpu_macs + backward.gpu_macs + record.evaluation.gpu_macs
            return (macs + record.optimizer_updates * ADAM_MACS) * energy.gpu_mac_j
        launches = TRAIN_SAMPLE_INFERENCES * record.forward.calls + record.evaluation.calls
        return launches * self.j_per_inference


GPU_ASSUMPTIONS = {
    "gpu_peak": GpuAssumption(
        "gpu_peak", "GPU at peak FLOP efficiency (A100 SXM, dense FP16 tensor cores, 400 W)",
        "NVIDIA A100 datasheet: 312 TFLOP/s dense FP16 tensor at 400 W (EnergyModel.gpu_mac_j)"),
    "gpu_cited_b1": GpuAssumption(
        "gpu_cited_b1", "GPU, cited figure for another network at batch 1 (~0.03 J per inference; not measured here)",
        "cited, not measured here: Blouw et al. 2019, arXiv 1812.01739, Table 1: 0.0298 J dynamic energy per "
        "inference of a small keyword-spotting network (another network) on an NVIDIA GPU through Nengo-DL/"
        "TensorFlow, batch 1; taken as launch overhead independent of network size and charged per launch "
        "(inference: one per sample; training: 3 per step plus 1 per evaluation batch)",
        j_per_inference=0.0298, batch=1),
}


def nvml_assumptions(model: nn.Module | None, x: torch.Tensor, batches: tuple[int, ...] = (1, 128)) -> tuple[dict[str, GpuAssumption], str]:
    """GPU assumptions measured here through NVML (``gpu_nvml_b<batch>``), and a status line; none, with
    the reason, on a machine without a CUDA GPU."""
    if model is None:
        return {}, "skipped: no digital model to run on the GPU"
    try:
        runs = [measure_inference(model, x, batch) for batch in batches]
    except GpuUnavailable as error:
        return {}, f"skipped: {error}"
    found = {f"gpu_nvml_b{m.batch}": GpuAssumption(
        f"gpu_nvml_b{m.batch}", f"GPU as measured here, batch {m.batch} (NVML)",
        f"NVML energy counter, {m.device}, {m.date}: {m.j_per_inference:.3g} J per inference (dynamic)",
        j_per_inference=m.j_per_inference, batch=m.batch) for m in runs}
    return found, "measured: " + "; ".join(g.source for g in found.values())


def chip_training_j(record: TrainingWork, energy: EnergyModel) -> float:
    """Joules of one training record on the hybrid chip at ``energy``'s node: forward and backward passes
    (arrays, DAC/ADC, adapters and digital layers), validation passes, Adam's state traffic in SRAM, with the
    SRAM sized by what the loop keeps in it (``TrainingWork.sram_bytes``)."""
    ledger = Ledger(replace(energy, sram_bytes=record.sram_bytes))
    backward = backward_of(record.forward, error_bits=energy.adc_bits)
    for part in (record.forward, backward, record.evaluation):
        hybrid.post_inference(ledger, part.hybrid, "hybrid", extra_digital_macs=part.digital_macs, phase="train")
        ledger.post_inference(sram_bits_read=part.digital_sram_bits, phase="train", note="digital layers' weights")
    ledger.post_optimizer(record.optimizer_updates, note=record.description)
    return ledger.joules("train")


def inference_ledger(work: PassWork, energy: EnergyModel, mode: str) -> Ledger:
    """A measured pass posted on the hybrid chip (``hybrid``) or with its branches merged (``analog``),
    the SRAM sized by the digital weights the pass reads (its categories say where the joules go)."""
    ledger = Ledger(replace(energy, sram_bytes=work.stored_bits / 8))
    hybrid.post_inference(ledger, work.hybrid, mode, extra_digital_macs=work.digital_macs)
    if mode == "hybrid":
        ledger.post_inference(sram_bits_read=work.digital_sram_bits, note="digital layers' weights")
    return ledger


def inference_j(work: PassWork, energy: EnergyModel, mode: str) -> float:
    """Joules of a measured pass (``inference_ledger``)."""
    return inference_ledger(work, energy, mode).joules("infer")


def sampling_work(denoiser: nn.Module, labels: torch.Tensor, shape: tuple[int, ...], schedule: ScheduleConfig) -> PassWork:
    """The work of generating one latent per label by guided DDIM (the denoiser's conditional and null-class
    passes at every step; the autoencoder's decoder is not counted): ``samples`` are the images, and each
    image at batch 1 costs one launch per step."""
    # diffusers takes seconds to import: only when a sampler is measured
    from neuro_rm.models.diffusion import sample_latents

    chunks = math.ceil(len(labels) / schedule.batch_size)
    measured = work.measure(lambda: sample_latents(denoiser, labels, shape, schedule))
    measured.launches_per_sample = measured.calls / max(chunks, 1)
    measured.samples = len(labels)
    return measured


def stage_records(records: list[TrainingWork], stages: dict[str, str]) -> dict[str, list[TrainingWork]]:
    """Training records grouped by stage: ``stages`` maps a stage name to the description prefix of its loops."""
    return {stage: [r for r in records if r.description.startswith(prefix)] for stage, prefix in stages.items()}


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else math.nan


def inference_keys(inference: PassWork, gpus: dict[str, GpuAssumption] | None = None) -> dict[str, object]:
    """Joules per sample of one measured pass, on the chip at every node (hybrid, branches merged) and on
    every GPU assumption, and their ratios: ``energy.<node>.<gpu>.inference_energy_ratio`` (GPU / hybrid)."""
    if inference.samples < 1:
        raise ValueError("the energy figures need a measured inference pass over at least one sample")
    gpus = GPU_ASSUMPTIONS if gpus is None else gpus
    out: dict[str, object] = {"energy.node": DEFAULT_NODE, "energy.gpu_assumptions": {g.name: g.source for g in gpus.values()}}
    for gpu in gpus.values():
        out[f"energy.gpu.{gpu.name}.inference_j_per_sample"] = gpu.inference_j(inference, EnergyModel()) / inference.samples
    for node in NODES:
        energy, prefix = EnergyModel.for_node(node), f"energy.{node}"
        hybrid_j = inference_j(inference, energy, "hybrid") / inference.samples
        analog_j = inference_j(inference, energy, "analog") / inference.samples
        out[f"{prefix}.inference_j_per_sample.hybrid"], out[f"{prefix}.inference_j_per_sample.analog"] = hybrid_j, analog_j
        for gpu in gpus.values():
            out[f"{prefix}.{gpu.name}.inference_energy_ratio"] = _ratio(out[f"energy.gpu.{gpu.name}.inference_j_per_sample"], hybrid_j)
            out[f"{prefix}.{gpu.name}.inference_energy_ratio_vs_analog"] = _ratio(analog_j, hybrid_j)
    return out


def task_energy(
    records: list[TrainingWork],
    stages: dict[str, str],
    inference: PassWork | None,
    lora_write: Ledger,
    full_write: Ledger,
    lora_stage: str,
    full_stage: str,
    gpus: dict[str, GpuAssumption] | None = None,
) -> dict[str, object]:
    """Every energy key of a task, under every node preset and GPU assumption.

    ``lora_stage`` / ``full_stage`` name the stages the paper compares: a LoRA step (its branch written
    to SRAM, ``lora_write``) against a full fine-tune whose weights are then reprogrammed (``full_write``).
    The full fine-tune runs on the chip's digital unit (``training_energy_ratio_on_chip``) or on the GPU
    (``<gpu>.training_energy_ratio``); the LoRA step always on the chip.  Without an ``inference`` pass
    (a task with no per-sample inference to measure) the inference keys are left out.
    """
    gpus = GPU_ASSUMPTIONS if gpus is None else gpus
    grouped = stage_records(records, stages)
    for stage in (lora_stage, full_stage):
        if not grouped.get(stage):
            raise ValueError(f"no training record of stage {stage!r}; recorded: {[r.description for r in records]}")
    if inference is not None:
        out = inference_keys(inference, gpus)
    else:
        out = {"energy.node": DEFAULT_NODE, "energy.gpu_assumptions": {g.name: g.source for g in gpus.values()}}
    default = EnergyModel()
    for gpu in gpus.values():
        for stage, rs in grouped.items():
            out[f"energy.gpu.{gpu.name}.training_j.{stage}"] = math.fsum(gpu.training_j(r, default) for r in rs)
    # the SRAM the writes go to holds what the deployed chip reads (its branches and digital layers)
    stored = inference.stored_bits if inference is not None else grouped[lora_stage][-1].forward.stored_bits
    out["energy.sram_bytes"] = max(stored / 8, EnergyModel().sram_bytes)
    for node in NODES:
        energy, prefix = EnergyModel.for_node(node), f"energy.{node}"
        train = {stage: math.fsum(chip_training_j(r, energy) for r in rs) for stage, rs in grouped.items()}
        out |= {f"{prefix}.training_j.{stage}": joules for stage, joules in train.items()}
        for sensing, suffix in (("sense_amp", ""), ("adc", "_verify_adc")):  # the verify-read assumption
            sized = replace(energy, sram_bytes=out["energy.sram_bytes"], verify_sensing=sensing)
            lora_w, full_w = lora_write.write_joules(sized), full_write.write_joules(sized)
            out[f"{prefix}.write_j.lora"], out[f"{prefix}.write_j.full_reprogram{suffix}"] = lora_w, full_w
            out[f"{prefix}.training_energy_ratio_on_chip{suffix}"] = _ratio(train[full_stage] + full_w, train[lora_stage] + lora_w)
            for gpu in gpus.values():
                gpu_full = out[f"energy.gpu.{gpu.name}.training_j.{full_stage}"]
                out[f"{prefix}.{gpu.name}.write_energy_ratio{suffix}"] = _ratio(full_w, lora_w)
                out[f"{prefix}.{gpu.name}.training_energy_ratio{suffix}"] = _ratio(gpu_full + full_w, train[lora_stage] + lora_w)
        if node == DEFAULT_NODE:
            out |= {f"energy.training_j.{stage}": joules for stage, joules in train.items()}
    out |= {f"energy.training_steps.{stage}": sum(r.steps for r in rs) for stage, rs in grouped.items()}
    out |= {f"energy.training_samples.{stage}": sum(r.forward.samples for r in rs) for stage, rs in grouped.items()}
    return out


def demo_energy(
    stages: dict[str, str],
    model: nn.Module | None,
    x: torch.Tensor | None,
    lora_write_bits: int,
    full_write: Ledger,
    lora_stage: str,
    full_stage: str,
    gpu_model: nn.Module | None = None,
    inference: PassWork | None = None,
) -> dict[str, object]:
    """What every demo calls at its end, under its ``work.metered`` run: ``task_energy`` of the stages
    recorded so far, one inference pass over ``x`` measured on ``model`` (or an ``inference`` measured by
    the task, e.g. ``sampling_work``), and the headline keys the demos reported before (default node,
    peak-FLOP GPU; ``energy.write_energy_ratio`` with the SRAM sized as in the per-node keys).
    ``gpu_model`` (the digital network) is run on a GPU through NVML when there is one.  Neither
    ``model`` nor ``inference``: no inference keys (training and writes only)."""
    meter = work.active_meter()
    if meter is None:
        raise RuntimeError("demo_energy needs the demo to run under work.metered (no training was recorded)")
    lora = Ledger()
    lora.post_sram_write(lora_write_bits, note=lora_stage)
    if model is not None:
        inference = work.measure(lambda: predict_logits(model, x))
    node = f"energy.{DEFAULT_NODE}"
    if inference is None:
        keys = task_energy(meter.records, stages, None, lora, full_write, lora_stage, full_stage)
        keys["energy.write_energy_ratio"] = keys[f"{node}.gpu_peak.write_energy_ratio"]
        return keys
    measured, status = nvml_assumptions(gpu_model, x)
    keys = task_energy(meter.records, stages, inference, lora, full_write, lora_stage, full_stage,
                       GPU_ASSUMPTIONS | measured)
    keys["energy.gpu_nvml"] = status
    keys["energy.write_energy_ratio"] = keys[f"{node}.gpu_peak.write_energy_ratio"]
    keys["energy.inference_j_per_sample"] = {"hybrid": keys[f"{node}.inference_j_per_sample.hybrid"],
                                             "analog": keys[f"{node}.inference_j_per_sample.analog"],
                                             "gpu": keys["energy.gpu.gpu_peak.inference_j_per_sample"]}
    keys["energy.inference_energy_ratio_vs_gpu"] = keys[f"{node}.gpu_peak.inference_energy_ratio"]
    keys["energy.inference_energy_ratio_vs_analog"] = keys[f"{node}.gpu_peak.inference_energy_ratio_vs_analog"]
    return keys


# ---------------------------------------------------------------------- README table
# What explains a gap between the paper's ratio and ours, per ratio (named in the table).
EXPLAINS = {
    "training_cost_ratio": "none: the same measure (trainable parameters, full / LoRA), node- and GPU-independent",
    "training_energy_ratio": "joules counted (forward + backward through arrays and branches, Adam in SRAM; the full "
                             "fine-tune on the GPU) where the paper counts parameters; the GPU assumption dominates",
    "write_energy_ratio": "verify reads sensed by a window check (2 sense-amplifier decisions, NeuroSim), so reprogramming "
                          "is mostly RM pulses (V·I·t, node-independent) while the LoRA write is SRAM (C·V², sized by what "
                          "is stored); adapter precision is a 4× lever (speaker branches fp32, face int8)",
    "write_energy_ratio_verify_adc": "the same with every verify read priced as a full 8-bit ADC conversion (the earlier, "
                                     "unsourced pricing): the ratio rests on this assumption",
    "inference_energy_ratio": "the GPU assumption (peak FLOP vs a cited per-launch figure), the node of the "
                              "digital branches, SRAM and ADCs, the SRAM's size and layout (one array holding all "
                              "that is stored) and no weight reuse in the adapters (every branch weight read per input "
                              "vector): SRAM reads are most of the hybrid bill",
}


def readme_table(tasks: dict[str, tuple[dict[str, object], dict[str, float]]]) -> str:
    """A markdown table: each task's ratios under each node × GPU assumption, the paper's beside them.

    ``tasks`` maps a task name to (its report's keys, the paper's ratios by ratio name)."""
    found = {key.split(".")[2] for report, _ in tasks.values() for key in report if key.startswith(f"energy.{DEFAULT_NODE}.gpu_")}
    gpus = [g for g in GPU_ASSUMPTIONS if g in found] + sorted(found - set(GPU_ASSUMPTIONS))
    head = ["ratio", "paper", *[f"{node} · {gpu}" for node in NODES for gpu in gpus], "what explains the difference"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for task, (report, paper) in tasks.items():
        for ratio, why in EXPLAINS.items():
            if ratio == "training_cost_ratio":
                cells = [_cell(report.get("energy.training_cost_ratio"))] * (len(NODES) * len(gpus))
            else:
                cells = [_cell(report.get(f"energy.{node}.{gpu}.{ratio}")) for node in NODES for gpu in gpus]
            if any(c != "—" for c in cells):
                reference = _cell(paper.get(ratio.removesuffix("_verify_adc")))
                rows.append("| " + " | ".join([f"{task}: `{ratio}`", reference, *cells, why]) + " |")
    return "\n".join(rows)


def stage_table(report: dict[str, object]) -> str:
    """A markdown table of one task's training joules per stage: on the chip at each node, on each GPU."""
    stages = [key.removeprefix("energy.training_j.") for key in report if key.startswith("energy.training_j.")]
    gpus = sorted({key.split(".")[2] for key in report if key.startswith("energy.gpu.") and ".training_j." in key})
    head = ["stage", "steps", *[f"chip {node}" for node in NODES], *gpus]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for stage in stages:
        cells = [f"{report[f'energy.{node}.training_j.{stage}']:.3g} J" for node in NODES]
        cells += [f"{report[f'energy.gpu.{gpu}.training_j.{stage}']:.3g} J" for gpu in gpus]
        rows.append("| " + " | ".join([f"`{stage}`", str(report.get(f"energy.training_steps.{stage}", "")), *cells]) + " |")
    return "\n".join(rows)


def _cell(value: object) -> str:
    if value is None:
        return "—"
    value = float(value)
    return "—" if math.isnan(value) else f"{value:.3g}×"
