import pytest
import torch
from torch import nn

from neuro_rm.learning import (
    LabelledSet,
    TrainConfig,
    UnlearnConfig,
    accuracy,
    fit_classifier,
    predict_logits,
    unlearn,
)
from neuro_rm.learning.erase import ERASE_IMPOSTOR_SD, relearn_readout
from neuro_rm.learning.unlearn import MASK_IMPOSTOR_SD, impostor_logits, relabel
from neuro_rm.models.heads import GrowableHead


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(100, 32), nn.ReLU(), nn.Linear(32, 4))


@pytest.fixture(scope="module")
def trained(tiny_speech):
    model = _mlp()
    fit_classifier(model, tiny_speech["train"], tiny_speech["val"], TrainConfig(epochs=10, lr=1e-2, batch_size=32))
    return model


@pytest.mark.parametrize("method", ["relabel", "ascent", "uniform", "impostor"])
def test_each_method_forgets_one_class_and_keeps_the_rest(trained, tiny_speech, method):
    import copy

    model = copy.deepcopy(trained)
    train, val, test = tiny_speech["train"], tiny_speech["val"], tiny_speech["test"]
    keep_test = test.without_classes([2])
    before_keep = accuracy(predict_logits(model, keep_test.x), keep_test.y)
    assert accuracy(predict_logits(model, test.of_classes([2]).x), test.of_classes([2]).y) > 0.9
    unlearn(model, list(model.parameters()), [2], train, val, [0, 1, 3],
            UnlearnConfig(method=method, train=TrainConfig(epochs=6, lr=5e-3, batch_size=32)))
    assert accuracy(predict_logits(model, test.of_classes([2]).x), test.of_classes([2]).y) <= 1 / 3
    assert accuracy(predict_logits(model, keep_test.x), keep_test.y) >= before_keep - 0.1


def test_uniform_forgetting_is_less_confident_than_relabelling(trained, tiny_speech):
    import copy

    confidence = {}
    for method in ("relabel", "uniform"):
        model = copy.deepcopy(trained)
        unlearn(model, list(model.parameters()), [2], tiny_speech["train"], tiny_speech["val"], [0, 1, 3],
                UnlearnConfig(method=method, train=TrainConfig(epochs=8, lr=5e-3, batch_size=32)))
        probs = torch.softmax(predict_logits(model, tiny_speech["test"].of_classes([2]).x), dim=1)
        confidence[method] = float(probs.max(dim=1).values.mean())
    assert confidence["uniform"] < confidence["relabel"]


@pytest.mark.parametrize("sd", [0.0, 1.5])
def test_the_impostor_target_is_the_other_speakers_mean_logit_less_sd_standard_deviations(sd):
    """Per class, the level is read from the samples of the *other* classes only (an impostor's claims), and
    ``sd`` moves it below their mean (0: a forgotten voice is answered as a typical impostor is)."""
    torch.manual_seed(0)
    logits, labels = torch.randn(30, 3) * 2 + torch.tensor([1.0, 0.0, -1.0]), torch.arange(30) % 3
    reader = nn.Linear(3, 3)
    with torch.no_grad():
        reader.weight.copy_(torch.eye(3))
        reader.bias.zero_()
    level = impostor_logits(reader, LabelledSet(logits, labels), sd)
    for c in range(3):
        others = logits[labels != c, c]
        assert level[c] == pytest.approx(float(others.mean() - sd * others.std(unbiased=False)), abs=1e-5)


@pytest.mark.parametrize(("asked", "depth"), [(0.37, 0.37), (None, MASK_IMPOSTOR_SD)])
def test_unlearning_reads_the_impostor_level_from_retained_samples_at_the_configured_depth(trained, tiny_speech,
                                                                                            monkeypatch, asked, depth):
    """The level is read once, from the retained samples only (a forgotten voice's own logits would lift it), at
    the depth the caller named, else a mask's."""
    import copy
    import importlib

    unlearn_module = importlib.import_module("neuro_rm.learning.unlearn")  # the module; the package exports the function
    seen = []
    real = unlearn_module.impostor_logits
    monkeypatch.setattr(unlearn_module, "impostor_logits",
                        lambda model, retained, sd: seen.append((set(retained.y.tolist()), sd)) or real(model, retained, sd))
    model = copy.deepcopy(trained)
    unlearn(model, list(model.parameters()), [2], tiny_speech["train"], tiny_speech["val"], [0, 1, 3],
            UnlearnConfig(impostor_sd=asked, train=TrainConfig(epochs=1, lr=5e-3, batch_size=32)))
    assert seen == [({0, 1, 3}, depth)]


def test_a_named_depth_holds_in_every_mode_and_an_unnamed_one_is_each_modes_own():
    """Suspension's mask stops a revoked voice at the mean impostor logit and erasure goes 1 sd below it, each
    chosen on validation (MASK_IMPOSTOR_SD, ERASE_IMPOSTOR_SD); a depth the caller names is kept by both."""
    assert (MASK_IMPOSTOR_SD, ERASE_IMPOSTOR_SD) == (0.0, 1.0)
    assert UnlearnConfig().at_depth(ERASE_IMPOSTOR_SD).impostor_sd == ERASE_IMPOSTOR_SD
    assert UnlearnConfig().at_depth(MASK_IMPOSTOR_SD).impostor_sd == MASK_IMPOSTOR_SD
    assert UnlearnConfig(impostor_sd=2.0).at_depth(ERASE_IMPOSTOR_SD).impostor_sd == 2.0
    assert UnlearnConfig(impostor_sd=0.0).at_depth(ERASE_IMPOSTOR_SD).impostor_sd == 0.0  # 0 is a depth, not "unset"
    with pytest.raises(ValueError, match="impostor_sd"):
        UnlearnConfig(impostor_sd=float("nan"))


def test_relabel_draws_only_kept_classes():
    labels = relabel(torch.zeros(1000, dtype=torch.long), [1, 3], seed=0)
    assert set(labels.tolist()) == {1, 3}


def test_bad_requests_are_refused(trained, tiny_speech):
    train, val = tiny_speech["train"], tiny_speech["val"]
    with pytest.raises(ValueError, match="disjoint"):
        unlearn(trained, list(trained.parameters()), [2], train, val, [2, 3])
    with pytest.raises(ValueError, match="no samples"):
        unlearn(trained, list(trained.parameters()), [2], train.without_classes([2]), val, [0, 1])
    with pytest.raises(ValueError, match="method"):
        UnlearnConfig(method="magic")


def test_a_step_that_cannot_help_leaves_the_model_unchanged(trained, tiny_speech):
    import copy

    model = copy.deepcopy(trained)
    before = [p.detach().clone() for p in model.parameters()]
    noise = LabelledSet(tiny_speech["train"].x, torch.randint(4, (len(tiny_speech["train"]),), generator=torch.Generator().manual_seed(0)))
    assert accuracy(predict_logits(model, tiny_speech["val"].x), tiny_speech["val"].y) == 1.0  # cannot be beaten
    result = fit_classifier(model, noise, tiny_speech["val"], TrainConfig(epochs=2, lr=1e-1, batch_size=32))
    assert result.best_epoch == -1
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_relearning_readout_rows_with_weight_decay_leaves_the_other_rows_as_they_were():
    torch.manual_seed(0)
    model = nn.Sequential()
    model.head = GrowableHead(8, 4)
    model.head.erase_row(3)
    x, y = torch.randn(64, 8), torch.randint(0, 2, (64,))
    frozen = (model.head.weight[2:].detach().clone(), model.head.bias[2:].detach().clone())
    config = TrainConfig(epochs=5, lr=1e-2, batch_size=16, weight_decay=0.1)
    relearn_readout(model, [0, 1], LabelledSet(x, y), LabelledSet(x, y), config)
    assert torch.equal(model.head.weight[2:].detach(), frozen[0]) and torch.equal(model.head.bias[2:].detach(), frozen[1])
    assert model.head.bias[3] == -1e4  # an erased row stays erased


def test_a_reverted_head_has_its_old_rows_and_still_masks_gradients():
    """``revert`` is how an interrupted enrolment takes its grown row back: the rows come back value for value,
    and rows told not to learn still get no gradient (the masking hook goes with the new parameters)."""
    torch.manual_seed(0)
    head = GrowableHead(8, 3)
    rows = head.snapshot()
    head.grow(1, seed=5)
    with torch.no_grad():
        head.weight[0] += 1.0
    head.revert(rows)
    assert head.n_classes == 3 and torch.equal(head.weight, rows[0]) and torch.equal(head.bias, rows[1])
    head.train_rows([1])
    head(torch.randn(4, 8)).sum().backward()
    assert head.weight.grad[[0, 2]].abs().sum() == 0 and head.weight.grad[1].abs().sum() > 0
    with pytest.raises(ValueError, match="head snapshot must be"):
        head.revert((torch.zeros(3, 7), torch.zeros(3)))
