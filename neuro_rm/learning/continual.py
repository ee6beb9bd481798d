"""Continual learning of new classes: a new branch plus new readout rows, with a small replay buffer."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from neuro_rm import layers as hybrid
from neuro_rm import work
from neuro_rm.learning.data import LabelledSet
from neuro_rm.learning.loop import TrainConfig
from neuro_rm.learning.metrics import accuracy, predict_logits
from neuro_rm.learning.train import FitResult, fit
from neuro_rm.lora import AdapterConfig

# enrolment: 30 epochs, and on small sets the steps 30 epochs give on the bundled one (new voice + replay)
ENROLL = TrainConfig(epochs=30, lr=3e-3, batch_size=64, min_steps=400)
# enrolment sized for a device, run with warm_rows=True (the new row fitted on the frozen features first): 5 epochs,
# the best on validation kept; a fixed length, so its time does not hang on when early stopping fires.  Chosen on
# validation among the schedules of benchmarks/probe_quick_enrolment.py (BENCHMARKS.md, Scale, part 1)
FAST_ENROLL = TrainConfig(epochs=5, lr=3e-3, batch_size=64)
ROW_L2 = 1e-3  # the fitted rows' L2 penalty (weights and bias): a row that separates its class stays bounded
FEATURE_BATCH = 256  # samples per forward pass of the row fit: its memory does not grow with the replay buffer
LBFGS_HISTORY = 100  # the row fit's L-BFGS memory (torch's default): 2 vectors per step kept, sized in SRAM


@contextmanager
def readout_inputs(head: nn.Module) -> Iterator[list[torch.Tensor]]:
    """The inputs ``head`` receives while the block runs, batch by batch: the frozen network's features, read
    once and reused for any rows scored or fitted on them."""
    seen: list[torch.Tensor] = []
    hook = head.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    try:
        yield seen
    finally:
        hook.remove()


def fit_rows(model: nn.Module, rows: list[int], data: LabelledSet, weights: torch.Tensor,
             description: str = "enroll") -> int:
    """Fit the readout ``rows`` on the model's features of ``data``, every other row and the network frozen: a
    convex problem (weighted cross-entropy plus ``ROW_L2``) solved by L-BFGS (at most 200 evaluations).  An
    enrolment fits its new row so, where training from a random row spends the first epochs of the branch
    catching up with it; ``SpeakerAuthenticator.refit_readout`` fits every live row together.  With samples of
    fewer than two classes among the rows fitted and the live others (an enrolment with an empty replay buffer)
    there is nothing to fit against (a bias alone would win) and the rows stay as they are.  Returns the loss
    evaluations; the features passes and each evaluation's product are counted by an active ``WorkMeter``."""
    head = model.head
    keep = torch.ones(head.n_classes, dtype=torch.bool, device=head.weight.device)
    keep[rows] = False
    live = keep & (head.weight.detach().norm(dim=1) > 0)  # an erased row is zero (and its bias far below)
    contenders = torch.cat([torch.nonzero(live).flatten(), torch.tensor(rows, device=keep.device)]).to(data.y.device)
    if torch.unique(data.y[torch.isin(data.y, contenders)]).numel() < 2:
        return 0
    fitted = nn.Linear(head.in_features, len(rows)).to(head.weight)
    with torch.no_grad():
        fitted.weight.copy_(head.weight[rows])
        fitted.bias.copy_(head.bias[rows])
    order = torch.cat([torch.nonzero(keep).flatten(), torch.tensor(rows, device=keep.device)])
    targets = torch.argsort(order)[data.y]  # each sample's class, as a column of [kept rows, fitted rows]
    optimizer = torch.optim.LBFGS(list(fitted.parameters()), max_iter=200, history_size=LBFGS_HISTORY,
                                  line_search_fn="strong_wolfe")
    with work.training(f"{description}: readout rows on frozen features", list(fitted.parameters())) as record:
        record.state_per_param = 2 * LBFGS_HISTORY + 3  # the history's steps and gradient changes, the direction, two gradients
        with readout_inputs(head) as seen, torch.no_grad():  # the features, in counted forward passes
            fixed = torch.cat([model(chunk) for chunk in data.x.split(FEATURE_BATCH)])
        features = torch.cat(seen)

        def closure() -> torch.Tensor:
            optimizer.zero_grad()
            logits = torch.cat([fixed[:, keep], fitted(features)], dim=1)
            penalty = sum(p.pow(2).sum() for p in fitted.parameters())
            loss = F.cross_entropy(logits, targets, weight=weights[order]) + ROW_L2 * penalty
            loss.backward()
            record.steps += 1
            return loss

        optimizer.step(closure)
    with torch.no_grad():
        head.weight[rows] = fitted.weight
        head.bias[rows] = fitted.bias
    return record.steps


def balanced_score(model: nn.Module, val: LabelledSet, new: list[int]) -> float:
    """Validation criterion: mean of new-class and old-class accuracy, so neither is sacrificed
    (ties, common on small validation sets, go to the lower validation loss)."""
    logits = predict_logits(model, val.x)
    is_new = torch.isin(val.y, torch.tensor(new))
    new_acc = accuracy(logits[is_new], val.y[is_new])
    old_acc = accuracy(logits[~is_new], val.y[~is_new]) if (~is_new).any() else new_acc
    return 0.5 * (new_acc + old_acc) - 1e-3 * float(F.cross_entropy(logits, val.y))


def learn_new_classes(
    model: nn.Module,
    params: list[nn.Parameter],
    new: LabelledSet,
    replay: LabelledSet,
    val: LabelledSet,
    config: TrainConfig = TrainConfig(epochs=10, lr=2e-3, batch_size=64),
    description: str = "enroll",
    warm_rows: bool = False,
) -> FitResult:
    """Train ``params`` on the new classes' samples mixed with the replay buffer of old ones.

    New classes are weighted up to balance the replay, so the new readout rows really learn.  ``warm_rows``:
    first fit the new classes' rows alone on the current features (``fit_rows``).
    """
    if len(new) == 0:
        raise ValueError("learn_new_classes needs samples of the new classes")
    data = LabelledSet.concat(new, replay)
    new_classes = sorted(int(c) for c in torch.unique(new.y))
    n_classes = int(data.y.max()) + 1
    weights = data.class_weights(n_classes)
    if warm_rows:
        fit_rows(model, new_classes, data, weights, description)

    def batch_loss(idx: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(data.x[idx]), data.y[idx], weight=weights)

    return fit(model, params, batch_loss, len(data), config, lambda: balanced_score(model, val, new_classes), description)


@dataclass
class Enrolment:
    """What enrolling one class on a deployed model did: the fit, and what it trained and must write."""

    fit: FitResult
    trainable: int  # the branch's parameters plus the new readout row (weights and bias)
    row_width: int  # values in the new readout row, written to SRAM beside the branch


def enroll_class(
    model: nn.Module,
    branch: str,
    adapter: AdapterConfig,
    new: LabelledSet,
    replay: LabelledSet,
    val: LabelledSet,
    config: TrainConfig = ENROLL,
    row_seed: int = 0,
    description: str = "enroll",
    warm_row: bool = False,
) -> Enrolment:
    """One new class on a model whose base sits in crossbars (speakers and faces alike): a readout row grown
    and trained alone among the rows, a new LoRA branch ``branch`` added and activated, replay of old classes.

    ``new`` must carry the label the grown row gets (the head's current number of classes).  ``warm_row``: the
    grown row is first fitted on the frozen features (the new branch starts at zero, so they are the
    deployed model's), as ``FAST_ENROLL`` is meant to run.
    """
    label = model.head.n_classes
    if not bool((new.y == label).all()):
        raise ValueError(f"the new class's samples must carry label {label} (the row enrolment grows), got {sorted(set(new.y.tolist()))}")
    model.head.grow(1, seed=row_seed)
    model.head.train_rows([label])
    params = hybrid.add_adapter(model, branch, adapter)
    hybrid.activate_adapter(model, branch)
    try:
        result = learn_new_classes(model, [*params, model.head.weight, model.head.bias], new, replay, val, config, description,
                                   warm_rows=warm_row)
    finally:
        model.head.train_rows(None)
    row_width = model.head.in_features + 1
    return Enrolment(result, sum(p.numel() for p in params) + row_width, row_width)
