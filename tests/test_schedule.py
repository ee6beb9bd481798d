"""The pretraining schedule: stopping that a single noisy epoch cannot trigger, patience fair to small sets,
and augmentation of spike frames."""

from dataclasses import replace

import pytest
import torch

from neuro_rm.learning.augment import Augment, augment
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.train import EarlyStop, fit_classifier, mean_weights


def _stop_epoch(scores, config, steps_per_epoch=20):
    stop = EarlyStop(config, steps_per_epoch)
    return next((epoch for epoch, s in enumerate(scores) if stop.update(epoch, s)), None)


# validation accuracy still climbing one point an epoch, with one lucky epoch (+15 points) early on
CLIMB = [0.50 + 0.01 * e + (0.15 if e == 2 else 0.0) for e in range(30)]


def test_a_single_lucky_epoch_stops_plain_patience_but_not_the_smoothed_schedule():
    assert _stop_epoch(CLIMB, TrainConfig(patience=4)) == 6  # the old rule: waits for the lucky epoch to be beaten
    assert _stop_epoch(CLIMB, TrainConfig(patience=4, smooth_epochs=3)) is None  # the trend is what counts
    flat = [0.8] * 10 + [0.79] * 20  # ... and a curve that has really stopped improving still stops
    assert _stop_epoch(flat, TrainConfig(patience=4, smooth_epochs=3)) == 4


def test_patience_in_steps_waits_more_epochs_on_a_small_set():
    config = TrainConfig(patience=3, patience_steps=40)
    falling = [0.9 - 0.01 * e for e in range(60)]
    assert _stop_epoch(falling, config, steps_per_epoch=2) == 20  # 2 steps an epoch: wait 20 epochs
    assert _stop_epoch(falling, config, steps_per_epoch=50) == 3  # 50 steps an epoch: patience decides
    assert _stop_epoch(falling, TrainConfig()) is None  # no patience at all: never stops
    with pytest.raises(ValueError, match="smooth_epochs"):
        TrainConfig(smooth_epochs=0)
    with pytest.raises(ValueError, match="patience_steps"):
        TrainConfig(patience_steps=0)


def test_augmentation_thins_and_shifts_without_touching_the_input():
    g = torch.Generator().manual_seed(0)
    x = torch.poisson(torch.full((200, 6, 8), 5.0), generator=g)
    before = x.clone()
    thinned = augment(x, Augment(spike_dropout=0.3), g)
    assert torch.equal(x, before) and (thinned <= x).all()
    assert thinned.sum() / x.sum() == pytest.approx(0.7, abs=0.02)  # each spike kept with probability 0.7
    shifted = augment(x, Augment(time_shift=2, channel_jitter=1), g)
    assert shifted.sum() < x.sum()  # content moved out, zeros shifted in
    # every sample is one of the allowed shifts of itself
    for i in range(20):
        ok = any(torch.equal(shifted[i], _moved(x[i], dt, dc)) for dt in range(-2, 3) for dc in range(-1, 2))
        assert ok, i
    assert len({float(shifted[i].sum() - x[i].sum()) for i in range(200)}) > 3  # shifts differ between samples
    assert torch.equal(augment(x, Augment(), g), x)


def _moved(frame, dt, dc):
    out = torch.zeros_like(frame)
    t, c = frame.shape
    out[max(dt, 0): t + min(dt, 0), max(dc, 0): c + min(dc, 0)] = frame[max(-dt, 0): t - max(dt, 0), max(-dc, 0): c - max(dc, 0)]
    return out


def test_pretraining_with_augmentation_still_learns(tiny_speech):
    from neuro_rm.models.rsnn import RSNNConfig, SpeakerRSNN

    train, val = tiny_speech["train"], tiny_speech["val"]
    torch.manual_seed(0)
    model = SpeakerRSNN(RSNNConfig(n_inputs=train.x.shape[-1], n_hidden=64, n_outputs=4))
    config = TrainConfig(epochs=8, lr=5e-3, batch_size=32, patience=3, smooth_epochs=3,
                         augment=Augment(spike_dropout=0.1, time_shift=1, channel_jitter=1))
    result = fit_classifier(model, LabelledSet(train.x, train.y), LabelledSet(val.x, val.y), config)
    assert result.best_score > 0.9


def _recorded_fit(config, scores):
    """Fit two parameters (a vector and a matrix) by Adam on a quadratic; ``score`` hands out ``scores`` in turn
    (the untrained start first) and records both parameters at every call; after the last entry it scores the
    weights themselves, so the kept model's own score can be checked."""
    from neuro_rm.learning.train import fit

    vector, matrix = torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 2))
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    remaining = iter(scores)

    aim, aim2 = torch.tensor([10.0, -3.0, 0.5]), torch.tensor([[-4.0, 2.0], [0.3, 7.0]])  # every entry its own path

    def own_score() -> float:
        return -float((vector.detach() - aim).abs().sum() + (matrix.detach() - aim2).abs().sum())

    def score() -> float:
        seen.append((vector.detach().clone(), matrix.detach().clone()))
        given = next(remaining, None)
        return own_score() if given is None else given

    def loss(idx: torch.Tensor) -> torch.Tensor:
        return ((vector - aim) ** 2).sum() + ((matrix - aim2) ** 2).sum()

    result = fit(torch.nn.Module(), [vector, matrix], loss, 8, config, score)
    return (vector.detach(), matrix.detach()), seen, result, own_score()


def _mean(states):
    return tuple(torch.stack([s[i] for s in states]).mean(0) for i in range(2))


def test_weight_average_keeps_the_mean_of_the_last_epochs_run():
    from neuro_rm.learning.train import averaging_window

    assert [averaging_window(n, 0.25) for n in (1, 2, 7, 8, 12, 13)] == [1, 2, 2, 2, 3, 3]
    # 12 epochs, validation peaks at epoch 2 (the third epoch): the average ignores the peak and takes epochs 9-11
    scores = [-1e9] + [-1.0 if e == 2 else -50.0 for e in range(12)]
    config = TrainConfig(epochs=12, lr=0.1, batch_size=8, average_last=0.25)
    kept, seen, result, own = _recorded_fit(config, scores)
    for value, expected, last in zip(kept, _mean(seen[-4:-1]), seen[-2], strict=True):  # seen[-1]: the average, scored once
        assert torch.allclose(value, expected) and not torch.allclose(value, last)
    assert (result.best_epoch, result.averaged_epochs) == (11, 3)
    assert result.best_score == own  # the score of the weights kept, not of the last epoch or the peak
    # the control: without averaging the best-scoring epoch is kept, exactly
    kept, seen, result, _ = _recorded_fit(replace(config, average_last=0.0), scores)
    assert all(torch.equal(value, expected) for value, expected in zip(kept, seen[3], strict=True))
    assert (result.best_epoch, result.averaged_epochs, result.best_score) == (2, 0, -1.0)


def test_weight_average_follows_early_stopping():
    scores = [-1e9, -50.0, -40.0, -30.0] + [-40.0] * 20  # no better median after epoch 2: stops at epoch 2 + 4
    config = TrainConfig(epochs=24, lr=0.1, batch_size=8, patience=4, smooth_epochs=1, average_last=0.5)
    kept, seen, result, _ = _recorded_fit(config, scores)
    assert result.best_epoch == 6 and result.averaged_epochs == 3  # 7 epochs run, half of them rounded down
    assert all(torch.allclose(value, expected) for value, expected in zip(kept, _mean(seen[-4:-1]), strict=True))


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_weight_average_fraction_is_checked(fraction):
    with pytest.raises(ValueError, match="average_last"):
        TrainConfig(average_last=fraction)


def test_mean_weights_keeps_an_unmoved_entry_bit_for_bit():
    torch.manual_seed(0)
    still = torch.randn(100_000)
    moved = torch.randn(100_000)
    epochs = tuple(torch.stack([still, moved + k]) for k in range(3))  # row 0 never moves, row 1 does
    mean = mean_weights(epochs)
    assert torch.equal(mean[0], still)  # a plain float mean of three equal values rounds some of them
    assert torch.equal(mean[1], torch.stack([e[1] for e in epochs]).mean(0))  # a moved entry: the plain mean


def _tiny_rsnn(train):
    from neuro_rm.models.rsnn import RSNNConfig, SpeakerRSNN

    torch.manual_seed(0)
    return SpeakerRSNN(RSNNConfig(n_inputs=train.x.shape[-1], n_hidden=32, n_outputs=4))


@pytest.mark.parametrize("order", [(1e-7, 5e-3), (5e-3, 1e-7)])
def test_a_choice_among_learning_rates_keeps_the_better_run_as_if_it_ran_alone(tiny_speech, order):
    """``lr_candidates``: every rate trains from the same start; the one with the better validation score is
    kept, in whichever order they come, with the weights and the global random state its run alone leaves;
    the steps of both runs are counted."""
    train, val = (LabelledSet(tiny_speech[k].x, tiny_speech[k].y) for k in ("train", "val"))
    base = TrainConfig(epochs=3, batch_size=32, seed=1, augment=Augment(spike_dropout=0.1))
    alone = _tiny_rsnn(train)
    lone = fit_classifier(alone, train, val, replace(base, lr=5e-3))
    after_alone = torch.rand(3)
    chosen = _tiny_rsnn(train)
    result = fit_classifier(chosen, train, val, replace(base, lr=order[0], lr_candidates=order[1:]))
    assert torch.equal(torch.rand(3), after_alone)  # training draws nothing from the global stream: it goes on as after the kept run alone
    assert result.lr == 5e-3 and result.best_score == lone.best_score and result.best_score > 0.5
    assert result.steps == 2 * lone.steps
    for kept, reference in zip(chosen.parameters(), alone.parameters(), strict=True):
        assert torch.equal(kept, reference)


@pytest.mark.parametrize("order", [(1e-7, 5e-3), (5e-3, 1e-7)])
def test_a_choice_among_learning_rates_on_a_deployed_array_replays_the_kept_run_s_read_noise(tiny_speech, order):
    """Review (lr choice) F3: each run on a deployed array draws read noise from the array's own generator; a
    candidate run must start from the same draws, and the kept result must be the lone run's, draws included."""
    from neuro_rm import layers as hybrid
    from neuro_rm.crossbar import CrossbarConfig
    from neuro_rm.lora import AdapterConfig
    from neuro_rm.models.rsnn import SYNAPSES

    train, val = (LabelledSet(tiny_speech[k].x, tiny_speech[k].y) for k in ("train", "val"))
    base = TrainConfig(epochs=2, batch_size=32, seed=2)

    def deployed():
        model = hybrid.analogize(_tiny_rsnn(train), targets=SYNAPSES, crossbar=CrossbarConfig(), seed=0)
        hybrid.calibrate(model, train.x[:64])
        params = hybrid.add_adapter(model, "repair", AdapterConfig(rank=4))
        hybrid.activate_adapter(model, "repair")
        return model, params

    alone, alone_params = deployed()
    lone = fit_classifier(alone, train, val, replace(base, lr=5e-3), alone_params)
    chosen, chosen_params = deployed()
    result = fit_classifier(chosen, train, val, replace(base, lr=order[0], lr_candidates=order[1:]), chosen_params)
    assert result.lr == 5e-3 and result.best_score == lone.best_score
    for kept, reference in zip(chosen_params, alone_params, strict=True):
        assert torch.equal(kept, reference)
    assert torch.equal(chosen(val.x), alone(val.x))  # the next reads draw what they would after the lone run


def test_a_rate_that_only_lowers_the_loss_does_not_replace_the_first(tiny_speech, monkeypatch):
    """Review (lr choice) F2: at equal validation accuracy a lower loss is no evidence (a more confident model
    has it); the candidate must be more accurate to be kept."""
    from neuro_rm.learning import train as training

    train, val = (LabelledSet(tiny_speech[k].x, tiny_speech[k].y) for k in ("train", "val"))
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(train.x[0].numel(), 4))
    torch.manual_seed(0)
    fitted = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(train.x[0].numel(), 4))
    fit_classifier(fitted, train, val, TrainConfig(epochs=5, lr=1e-2, batch_size=32))
    scale = {1e-3: 1.0, 3e-4: 50.0}  # the second run: the same decisions, far more confident (lower loss)

    def scripted(model, params, loss, n, config, score, description):
        with torch.no_grad():
            for p, q in zip(params, fitted.parameters(), strict=True):
                p.copy_(q * scale[config.lr])
        return training.FitResult(1, 0, score(), sum(p.numel() for p in params))

    monkeypatch.setattr(training, "fit", scripted)
    result = fit_classifier(model, train, val, TrainConfig(lr=1e-3, lr_candidates=(3e-4,)))
    assert result.lr == 1e-3 and torch.equal(model[1].weight, fitted[1].weight)


def test_learning_rate_candidates_must_be_positive():
    with pytest.raises(ValueError, match="lr_candidates must be > 0"):
        TrainConfig(lr_candidates=(1e-3, 0.0))
