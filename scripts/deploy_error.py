"""Where deployment loses accuracy: the mean and the spread of the programming error, taken apart.

    python scripts/deploy_error.py [--data FILE] [--preset NAME] [--pulse-gain G] [--seed 0]

Pretrains the RSNN with the demo's recipe on the speakers the demo pretrains (all but the last), writes its
synapses into crossbars by write-and-verify (default device, or a cited preset), reads them ideally (no read
noise, DAC or ADC, so only the cells speak) and reports, per layer, the programming error's mean and sd
relative to the layer's largest |w|.  Then the test accuracy of the digital network given (a) the programmed
weights, (b) its own weights plus the errors with their mean removed, (c) its own weights plus only the mean
error: if (c) loses what (a) loses, a common offset of the written cells, not their spread, is to blame.
Test accuracy is reported only; nothing is chosen on it.
"""

from __future__ import annotations

import argparse
import copy
from dataclasses import replace

import torch

from neuro_rm import layers as hybrid
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.data import load_bundled_speakers, load_speakers
from neuro_rm.device import PRESETS, DeviceConfig
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.report import accuracy_on
from neuro_rm.learning.train import PRETRAIN, fit_classifier
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN


def _with_errors(model: SpeakerRSNN, errors: dict[str, torch.Tensor]) -> SpeakerRSNN:
    """A copy of the digital ``model`` whose synapse weights have ``errors`` added."""
    shifted = copy.deepcopy(model)
    params = dict(shifted.named_parameters())
    with torch.no_grad():
        for name, error in errors.items():
            params[f"{name}.weight"].add_(error)
    return shifted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="SSC-layout HDF5 file (default: the bundled spiking FSDD)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None, help="cited cell preset (default: DeviceConfig())")
    parser.add_argument("--pulse-gain", type=float, default=None,
                        help="override the write-verify controller's pulse gain (share of the error each pulse aims at)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    device = DeviceConfig() if args.preset is None else PRESETS[args.preset]()
    if args.pulse_gain is not None:
        try:
            device = replace(device, pulse_gain=args.pulse_gain)
        except ValueError as error:
            parser.error(str(error))
    torch.set_num_threads(1)
    splits = load_bundled_speakers() if args.data is None else load_speakers(args.data)
    old = torch.arange(len(splits.speaker_names) - 1)
    train, val, test = (LabelledSet(s.x, s.y).of_classes(old.tolist()) for s in (splits.train, splits.val, splits.test))
    torch.manual_seed(args.seed)
    model = SpeakerRSNN(RSNNConfig(n_inputs=train.x.shape[-1], n_outputs=len(old)))
    fit_classifier(model, train, val, PRETRAIN)
    model.eval()
    deployed = copy.deepcopy(model)
    hybrid.analogize(deployed, device, SYNAPSES, CrossbarConfig.ideal(), seed=args.seed)
    deployed.eval()
    targets = dict(model.named_parameters())
    errors = {}
    for name, layer in hybrid.hybrid_layers(deployed):
        target = targets[f"{name}.weight"].detach()
        errors[name] = layer.crossbar.weight().reshape(target.shape) - target
        scale = target.abs().max()
        print(f"{name}: error / max|w|  mean {float(errors[name].mean() / scale):+.4f}  sd {float(errors[name].std() / scale):.4f}")
    centred = {name: e - e.mean() for name, e in errors.items()}
    offset = {name: torch.full_like(e, float(e.mean())) for name, e in errors.items()}
    for label, net in (("digital", model), ("programmed cells (ideal readout)", deployed),
                       ("digital + errors minus their mean", _with_errors(model, centred)),
                       ("digital + only the mean error", _with_errors(model, offset))):
        print(f"test accuracy, {label}: {accuracy_on(net, test):.4f}")


if __name__ == "__main__":
    main()
