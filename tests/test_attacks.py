"""The attacks on a revocation find what they look for where it is present (positive controls)."""

import pytest
import torch

from neuro_rm.learning import TrainConfig
from neuro_rm.learning.attacks import (
    MembershipAttack,
    RelearnConfig,
    branch_off_accuracy,
    branch_off_auc,
    relearn,
)
from neuro_rm.learning.train import fit_classifier
from neuro_rm.models import RSNNConfig, SpeakerRSNN
from neuro_rm.models.heads import GrowableHead

QUICK = TrainConfig(epochs=6, lr=5e-3, batch_size=32)


def _model(tiny_speech, classes, seed):
    torch.manual_seed(seed)
    model = SpeakerRSNN(RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=3))
    fit_classifier(model, tiny_speech["train"].of_classes(classes), tiny_speech["val"].of_classes(classes), QUICK)
    return model.eval()


@pytest.fixture(scope="module")
def population(tiny_speech):
    """Models that learnt speaker 1 and models that never heard it, each of its own seed."""
    return {
        "with": [_model(tiny_speech, [0, 1, 2], seed) for seed in (1, 2, 3)],
        "without": [_model(tiny_speech, [0, 2], seed) for seed in (11, 12, 13)],
        "reference": [_model(tiny_speech, [0, 2], seed) for seed in (21, 22, 23)],
        "member": _model(tiny_speech, [0, 1, 2], 31),
        "stranger": _model(tiny_speech, [0, 2], 41),
    }


def test_membership_attack_finds_a_model_that_learnt_the_voice(population, tiny_speech):
    test = tiny_speech["test"]
    attack = MembershipAttack(test.of_classes([1]).x, test.of_classes([0, 2]), [0, 2])
    attack.fit(population["with"], population["without"])
    member = attack.auc(population["member"], population["reference"])
    stranger = attack.auc(population["stranger"], population["reference"])
    assert member >= 0.9  # power: a fresh model trained on the voice gives itself away
    assert stranger < member  # a fresh model that never heard it scores lower ...
    null_mean, null_sd = attack.null_spread(population["reference"])
    # digital references score the same probes alike in every comparison, so each pair's AUCs sum to 1: the mean is 0.5
    assert null_mean == pytest.approx(0.5, abs=1e-6)
    assert member > 0.5 + null_sd and null_sd > 0  # the member stands out beyond the references' own scatter


def test_membership_attack_refuses_to_score_before_it_is_trained(tiny_speech):
    test = tiny_speech["test"]
    attack = MembershipAttack(test.of_classes([1]).x, test.of_classes([0, 2]), [0, 2])
    with pytest.raises(ValueError, match="shadow models first"):
        attack.scores(_model(tiny_speech, [0, 2], 0))
    with pytest.raises(ValueError, match="no samples of rows"):
        MembershipAttack(test.of_classes([1]).x, test.of_classes([0]), [0, 2])


def test_branch_off_attack_restores_the_voiceprint_on_a_copy(population, tiny_speech):
    model = population["member"]
    bob = tiny_speech["test"].of_classes([1]).x
    voiceprint = (model.head.weight[1].detach().clone(), model.head.bias[1].detach().clone())
    model.head.erase_row(1)
    try:
        assert branch_off_accuracy(model, 1, voiceprint, bob) >= 0.9  # the old row brings the voice back
        assert float((model(bob).argmax(dim=1) == 1).float().mean()) == 0.0  # the model itself is left as it was
    finally:
        with torch.no_grad():
            model.head.weight[1], model.head.bias[1] = voiceprint


def test_relearning_recognises_a_known_voice_within_its_budget_and_leaves_the_model(population, tiny_speech):
    model = population["member"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train, test = tiny_speech["train"], tiny_speech["test"]
    result = relearn(model, train.of_classes([1]).x[:5], test.of_classes([1]).x, test.of_classes([0, 2]),
                     RelearnConfig(steps=40, lr=3e-3), seed=0, old_row=1)
    assert result.steps <= 40 and len(result.voice_loss) == result.steps + 1  # stops once the voice is recognised
    assert result.voice_loss[-1] < result.voice_loss[0]
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_branch_off_auc_finds_a_voiceprint_whose_bias_alone_loses_the_argmax():
    """A row that ranks the voice's margin above everyone else's but whose old bias is too low: argmax finds
    nothing, the bias-free attack finds all of it; the reversed row finds little."""
    model = torch.nn.Sequential()
    model.head = GrowableHead(2, 3)
    with torch.no_grad():
        model.head.weight.copy_(torch.tensor([[0.0, 1.0], [0.0, 0.0], [0.0, -1.0]]))
        model.head.bias.zero_()
    voice = torch.tensor([[3.0, 0.0], [2.0, 0.5]])
    others = torch.tensor([[0.0, 2.0], [0.0, -2.0], [1.0, 1.0], [2.5, 3.0]])  # the last: high on the row, claimed by row 0
    row = (torch.tensor([1.0, 0.0]), torch.tensor(-10.0))  # points at the voice, bias far too low
    assert branch_off_accuracy(model, 1, row, voice) == 0.0
    assert branch_off_auc(model, 1, row, voice, others) == 1.0  # the margin over the best other row, not the raw logit
    assert branch_off_auc(model, 1, (-row[0], row[1]), voice, others) <= 0.25
