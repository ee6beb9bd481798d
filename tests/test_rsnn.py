import pytest
import torch

from neuro_rm import analogize
from neuro_rm.crossbar import CrossbarConfig
from neuro_rm.models.rsnn import SYNAPSES, RSNNConfig, SpeakerRSNN


def test_reference_architecture_size():
    # 140x512+512, 512x512+512, 512x5+5: the public reference's 337,413 parameters
    assert sum(p.numel() for p in SpeakerRSNN().parameters()) == 337_413


@pytest.mark.parametrize("analog", [False, True])
def test_fast_inference_path_equals_snntorch_dynamics(analog):
    torch.manual_seed(0)
    model = SpeakerRSNN(RSNNConfig(n_inputs=20, n_hidden=64, n_outputs=3))
    with torch.no_grad():
        model.fc_in.weight.mul_(4)  # enough drive that neurons spike and reset
    if analog:  # the noise-free readout, so that the two passes see the same currents
        analogize(model, targets=SYNAPSES, crossbar=CrossbarConfig.ideal())
    x = (torch.rand(8, 10, 20) < 0.3).float()
    with torch.no_grad():
        fast = model.spikes(x)
    with torch.enable_grad():
        reference = model.spikes(x)
    assert fast.sum() > 0 and torch.equal(fast, reference.detach())


def test_gradients_flow_through_the_spikes():
    model = SpeakerRSNN(RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=3))
    x = (torch.rand(4, 10, 20) < 0.3).float()
    model(x).sum().backward()
    assert model.fc_in.weight.grad.abs().sum() > 0 and model.lif.recurrent.weight.grad.abs().sum() > 0


def test_wrong_input_shape_is_named():
    with pytest.raises(ValueError, match=r"\(batch, time, 140\)"):
        SpeakerRSNN()(torch.zeros(2, 10, 700))
