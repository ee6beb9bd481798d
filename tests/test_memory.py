"""What an authenticator keeps in memory: counted by walking it, and not pinned by one large batch."""

import collections
import types

import torch

from neuro_rm import crossbar
from neuro_rm.auth import SpeakerAuthenticator
from neuro_rm.learning import TrainConfig, predict_logits
from neuro_rm.memory import storages
from neuro_rm.models import RSNNConfig


def test_each_storage_is_counted_once_whoever_holds_it():
    weight = torch.nn.Parameter(torch.zeros(100))
    weight.grad = torch.ones(100)
    holder = types.SimpleNamespace(a=weight, view=weight[10:20], both=[weight, {"again": weight}], library=torch)
    found = storages(holder)
    assert sorted(found.values()) == [400, 400]  # the weight (its view is the same storage) and its gradient
    assert sum(storages(holder, torch.zeros(3)).values()) == 812


def test_tensors_held_by_hooks_queues_numpy_views_and_sparse_tensors_are_found_once():
    snapshot, queued, base = torch.zeros(50), torch.zeros(25), torch.zeros(10)
    hook = lambda: snapshot  # noqa: E731 - a hook that keeps a snapshot alive
    sparse = torch.eye(4).to_sparse()
    sparse_size = sum(t.untyped_storage().nbytes() for t in (sparse._indices(), sparse._values()))
    holder = types.SimpleNamespace(hooks=[hook], queue=collections.deque([queued]), array=base.numpy(), base=base,
                                   sparse=sparse)
    assert sum(storages(holder).values()) == 200 + 100 + 40 + sparse_size


def _deployed(tiny_speech):
    train, val = tiny_speech["train"], tiny_speech["val"]
    auth, _ = SpeakerAuthenticator.pretrain(["a", "b", "c"], train.of_classes([0, 1, 2]), val.of_classes([0, 1, 2]),
                                            RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=3), TrainConfig(epochs=1))
    auth.deploy()
    return auth


def _caches_after_a_large_batch_then_one_sample(auth, frames):
    with torch.no_grad():
        auth.model.eval()(frames.repeat(20, 1, 1))  # 4,800 samples in one read (an evaluation, a calibration)
    large = auth.memory()["caches"]
    predict_logits(auth.model, frames[:1])
    return large, auth.memory()


def test_one_large_batch_does_not_pin_its_work_memory(tiny_speech, monkeypatch):
    auth, frames = _deployed(tiny_speech), tiny_speech["test"].x
    large, after = _caches_after_a_large_batch_then_one_sample(auth, frames)
    assert after["total"] == after["model"] + after["buffers"] + after["caches"]
    assert after["caches"] < large / 4
    # positive control: buffers that are never made smaller keep the large batch's work memory
    monkeypatch.setattr(crossbar, "SCRATCH_SLACK", 10**9)
    kept_large, kept = _caches_after_a_large_batch_then_one_sample(_deployed(tiny_speech), frames)
    assert kept["caches"] > kept_large / 2


def test_training_leaves_no_gradient_behind(tiny_speech):
    auth = _deployed(tiny_speech)
    auth.consolidation = None  # the first branch stays live and active while the second trains
    voice, held_out = tiny_speech["train"].of_classes([3]).x, tiny_speech["val"].of_classes([3]).x
    for name in ("dee", "eve"):
        assert auth.enroll(name, voice, held_out, TrainConfig(epochs=1)).fit.steps > 0
    assert [name for name, p in auth.model.named_parameters() if p.grad is not None] == []
    assert auth.memory()["model"] == sum(t.numel() * t.element_size() for t in auth.model.state_dict().values())


def test_parameters_the_caller_froze_stay_frozen_after_training(tiny_speech):
    auth = _deployed(tiny_speech)
    auth.consolidation = None
    voice, held_out = tiny_speech["train"].of_classes([3]).x, tiny_speech["val"].of_classes([3]).x
    auth.enroll("dee", voice, held_out, TrainConfig(epochs=1))
    first, second = auth.model.fc_in.adapters["enroll_3"].a, auth.model.fc_in.adapters["enroll_3"].b
    first.requires_grad_(False)  # the caller freezes one factor of the first voice's branch
    auth.enroll("eve", voice, held_out, TrainConfig(epochs=1))  # trains another branch while that one is live
    assert not first.requires_grad and second.requires_grad
