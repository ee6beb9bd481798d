"""The replay and holdout buffers an authenticator keeps: packed exactly, bounded, and saved with their caps."""

import numpy as np
import pytest
import torch

from neuro_rm.auth import Buffers, SpeakerAuthenticator
from neuro_rm.data.labelled import LabelledSet, pack_frames
from neuro_rm.learning import TrainConfig
from neuro_rm.models import RSNNConfig

QUICK = TrainConfig(epochs=2, lr=5e-3, batch_size=32)


@pytest.mark.parametrize(("frames", "dtype"), [
    (torch.tensor([[0.0, 3.0], [255.0, 1.0]]), torch.uint8),  # spike counts: a byte each
    (torch.tensor([[0.0, 256.0], [7.0, 1.0]]), torch.int16),  # a count past a byte
    (torch.tensor([[-2.0, 3.0]]), torch.int16),  # negative integers (not counts, but held exactly)
    (torch.tensor([[0.5, 1.0]]), torch.float32),  # fractions: no integer type holds them
    (torch.tensor([[1.0, float("nan")]]), torch.float32),
    (torch.tensor([[40000.0, 1.0]]), torch.float32),  # past int16
    (torch.tensor([[-0.0, 1.0]]), torch.float32),  # a negative zero would come back positive
])
def test_frames_are_packed_only_where_every_value_survives(frames, dtype):
    packed = pack_frames(frames)
    assert packed.dtype == dtype
    assert torch.equal(packed.float(), frames) or torch.isnan(frames).any()
    assert torch.equal(torch.signbit(packed.float()), torch.signbit(frames))


def test_buffers_hold_spike_counts_in_a_byte_and_hand_back_the_same_frames(tiny_speech):
    train, val = tiny_speech["train"], tiny_speech["val"]
    buffers = Buffers(train, val)
    assert buffers.held("replay").x.dtype == torch.uint8
    assert buffers.replay.x.dtype == torch.float32 and torch.equal(buffers.replay.x, train.x)
    assert torch.equal(buffers.holdout.y, val.y)
    float_bytes = sum(t.numel() * t.element_size() for s in (train, val) for t in (s.x, s.y))
    label_bytes = sum(s.y.numel() * 8 for s in (train, val))
    assert buffers.nbytes() - label_bytes == (float_bytes - label_bytes) // 4


def test_frames_that_cannot_be_packed_come_back_as_they_were_given(tiny_speech):
    train = tiny_speech["train"]
    scaled = LabelledSet(train.x.double() / 3, train.y)  # float64, not whole numbers
    buffers = Buffers(scaled, tiny_speech["val"])
    assert buffers.replay.x.dtype == torch.float64 and torch.equal(buffers.replay.x, scaled.x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float64, torch.int64])
def test_frames_come_back_in_the_type_they_were_given_and_as_a_copy(tiny_speech, dtype):
    train = tiny_speech["train"]
    given = LabelledSet(train.x.to(dtype) * (1 << 20 if dtype == torch.int64 else 1), train.y)  # past float32's integers
    expected = given.x.clone()
    buffers = Buffers(given, tiny_speech["val"])
    handed = buffers.replay.x
    assert handed.dtype == dtype and torch.equal(handed, expected)
    handed.add_(1)  # a write to what was handed out reaches neither the buffer nor the caller's tensor
    assert torch.equal(buffers.replay.x, expected) and torch.equal(buffers.to("cpu").replay.x, expected)


def test_bad_caps_are_refused_by_name_whenever_they_are_set(tiny_speech):
    with pytest.raises(ValueError, match="max_holdout"):
        Buffers(tiny_speech["train"], tiny_speech["val"], max_holdout=0)
    buffers = Buffers(tiny_speech["train"], tiny_speech["val"])
    for bad in (0, -1, 2.5, True, "9", 10**30):
        with pytest.raises(ValueError, match="max_replay"):
            buffers.max_replay = bad
    buffers.max_replay = np.int64(7)  # any integer type; kept as a plain int, so a state saves it
    assert buffers.max_replay == 7 and type(buffers.max_replay) is int


def test_a_saved_state_keeps_its_buffer_caps_and_packed_frames(tiny_speech, tmp_path):
    train, val = tiny_speech["train"], tiny_speech["val"]
    auth, _ = SpeakerAuthenticator.pretrain(["a", "b"], train.of_classes([0, 1]), val.of_classes([0, 1]),
                                            RSNNConfig(n_inputs=20, n_hidden=16, n_outputs=2), QUICK)
    auth.buffers.max_replay, auth.buffers.max_holdout = 50, 30
    fractional = LabelledSet(train.x[:4] * 0.5, train.y[:4])  # frames a user scaled: kept as they are
    auth.buffers.replay = LabelledSet.concat(auth.buffers.replay, fractional)
    auth.save(tmp_path / "state")
    back = SpeakerAuthenticator.load(tmp_path / "state")
    assert (back.buffers.max_replay, back.buffers.max_holdout) == (50, 30)
    assert torch.equal(back.buffers.replay.x, auth.buffers.replay.x)
    assert back.buffers.held("holdout").x.dtype == torch.uint8
