"""RSNN training and inference throughput, side by side in one run, plus the share of matmul peak.

Variants: a hand-written LIF loop in plain torch (the way the public reference writes it), the same
network in snntorch, and the neuro_rm analogized network (crossbar base; training updates one LoRA
branch, as every lifecycle step does), all fed a batch of the bundled spiking FSDD frames.  The share of
peak counts the dense products' work (input and recurrent layers every step, the readout once), not the
LoRA branch's (about 4 % more) nor the zero inputs the kernel skips.  Run: python benchmarks/bench_throughput.py
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch.nn.functional as F
from bench_forward import _eager
from common import interleaved_best, median_seconds, print_table
from torch import nn

from neuro_rm import analogize, fused
from neuro_rm import layers as hybrid
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data import load_bundled_speakers
from neuro_rm.lora import AdapterConfig
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN


class _Spike(torch.autograd.Function):
    """Heaviside forward, fast-sigmoid surrogate backward (slope 25)."""

    @staticmethod
    def forward(ctx, v):  # noqa: ANN001, ANN205
        ctx.save_for_backward(v)
        return (v > 0).to(v.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001, ANN205
        (v,) = ctx.saved_tensors
        return grad / (25 * v.abs() + 1) ** 2


class HandWrittenRSNN(nn.Module):
    """Plain-torch LIF loop: mem = β·mem + W_in·x + W_rec·s − θ·s_prev, s = H(mem − θ)."""

    def __init__(self, cfg: RSNNConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.fc_in = nn.Linear(cfg.n_inputs, cfg.n_hidden)
        self.rec = nn.Linear(cfg.n_hidden, cfg.n_hidden)
        self.out = nn.Linear(cfg.n_hidden, cfg.n_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        current = self.fc_in(x)
        spk = torch.zeros(x.shape[0], self.cfg.n_hidden)
        mem = torch.zeros_like(spk)
        count = torch.zeros_like(spk)
        for t in range(x.shape[1]):
            mem = self.cfg.beta * mem + current[:, t] + self.rec(spk) - self.cfg.threshold * spk
            spk = _Spike.apply(mem - self.cfg.threshold)
            count = count + spk
        return self.out(count)


def _train_step(model: nn.Module, params: list, x: torch.Tensor, y: torch.Tensor, opt: torch.optim.Optimizer) -> None:
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    opt.step()


def run(batch: int = 128, repeats: int = 7) -> tuple[list[tuple], list[tuple]]:
    torch.manual_seed(0)
    cfg = RSNNConfig()
    data = load_bundled_speakers().train  # what the deployed network reads: spike counts, then spikes
    x, y = data.x[:batch].contiguous(), data.y[:batch] % cfg.n_outputs
    snn_model = SpeakerRSNN(cfg)
    models = {
        "plain torch (hand-written LIF)": (HandWrittenRSNN(cfg), None),
        "snntorch, digital": (snn_model, None),
    }
    for label, crossbar in (("ideal", CrossbarConfig.ideal()), ("realistic", CrossbarConfig())):
        analog = analogize(copy.deepcopy(snn_model), targets=SYNAPSES, crossbar=crossbar)
        with torch.no_grad():
            analog(x)  # calibrates the ADCs
        models[f"neuro_rm analogized, {label} readout (+1 LoRA)"] = (analog, hybrid.add_adapter(analog, "bench", AdapterConfig(8, 16.0)))
        hybrid.set_adapter(analog, "bench")
    train_seconds = {}
    for label, (model, params) in models.items():
        params = params or list(model.parameters())
        opt = torch.optim.Adam(params, lr=1e-3)
        model.train()
        train_seconds[label] = median_seconds(lambda m=model, p=params, o=opt: _train_step(m, p, x, y, o), repeats)
        model.eval()
    # inference and the matmul peak, round-robin in one loop: the share of peak compares like with like
    n = 1024  # short enough that the fastest of many runs is an uninterrupted one
    a, b = torch.randn(n, n), torch.randn(n, n)
    calls = {label: (lambda m=model: m(x)) for label, (model, _) in models.items()}
    realistic = models["neuro_rm analogized, realistic readout (+1 LoRA)"][0]
    calls["neuro_rm analogized, realistic readout, eager periphery (+1 LoRA)"] = lambda: _eager(realistic, x)
    calls["peak"] = lambda: a @ b
    with torch.no_grad():
        seconds = interleaved_best(calls, 3 * repeats)
    peak = 2 * n**3 / seconds.pop("peak") / 1e9
    labels = list(models)
    base_train, base_infer = train_seconds[labels[0]], seconds[labels[0]]
    rows = [(label, batch / train_seconds[label], batch / seconds[label], train_seconds[label] / base_train,
             seconds[label] / base_infer) for label in labels]
    macs = batch * 10 * (cfg.n_inputs * cfg.n_hidden + cfg.n_hidden * cfg.n_hidden) + batch * cfg.n_hidden * cfg.n_outputs
    peak_rows = [(label, 2 * macs / s / 1e9, 2 * macs / s / 1e9 / peak) for label, s in seconds.items()]
    peak_rows.append((f"torch matmul {n}x{n} (peak)", peak, 1.0))
    return rows, peak_rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    rows, peak_rows = run(args.batch, args.repeats)
    kernel = "compiled periphery kernel" if fused.kernel() is not None else "no compiled kernel: eager periphery"
    print_table(f"RSNN throughput, batch {args.batch}, {torch.get_num_threads()} threads, {kernel} (samples/s; time ratio vs plain torch)",
                ("variant", "train samples/s", "infer samples/s", "train time ratio", "infer time ratio"), rows)
    print_table("Batched inference: achieved share of the machine's matmul peak",
                ("variant", "GFLOP/s", "share of peak"), peak_rows)


if __name__ == "__main__":
    main()
