"""Two CPU processes under torchrun train the same adapter and must end with identical weights."""

import atexit
import subprocess
import sys
import textwrap
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file

from neuro_rm.learning import distributed

HERE = Path(__file__).parent

CHILD = textwrap.dedent(
    """
    import atexit, os, sys
    sys.path.insert(0, {tests!r})
    import torch
    import torch.distributed as dist

    # registered before init_from_env, so it runs after the teardown that registers: is the group gone by then?
    atexit.register(lambda: open(os.path.join({out!r}, f"left{{os.environ['RANK']}}"), "w").write(str(not dist.is_initialized())))
    from safetensors.torch import save_file
    from conftest import synthetic_speakers
    from neuro_rm import layers as hybrid
    from neuro_rm.auth import SpeakerAuthenticator
    from neuro_rm.learning import TrainConfig, distributed
    from neuro_rm.models import RSNNConfig

    torch.set_num_threads(1)
    assert distributed.init_from_env()
    train, val = synthetic_speakers(seed=0), synthetic_speakers(seed=1)
    auth, _ = SpeakerAuthenticator.pretrain(["a", "b", "c", "d"], train, val,
        RSNNConfig(n_inputs=20, n_hidden=32, n_outputs=4), TrainConfig(epochs=2, lr=5e-3, batch_size=32))
    auth.deploy()
    hybrid.add_write_noise(auth.model, 5.0)
    auth.restore(TrainConfig(epochs=2, lr=5e-3, batch_size=33))  # odd batch: uneven slices per rank
    params = {{f"p{{i}}": p.detach() for i, p in enumerate(hybrid.adapter_parameters(auth.model, "restore"))}}
    save_file(params, os.path.join({out!r}, f"rank{{distributed.rank()}}.safetensors"))
    """
)


def test_two_ranks_end_with_identical_adapter_weights(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(tests=str(HERE), out=str(tmp_path)))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", str(script)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rank0, rank1 = (load_file(tmp_path / f"rank{r}.safetensors") for r in (0, 1))
    assert rank0.keys() == rank1.keys() and len(rank0) == 4  # A and B of two synapse layers
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert rank0["p1"].abs().sum() > 0 and rank0["p3"].abs().sum() > 0  # B starts at zero: it really trained
    # left to interpreter shutdown, the group sometimes aborted a finished rank (SIGABRT): it is torn down at exit
    assert [(tmp_path / f"left{r}").read_text() for r in (0, 1)] == ["True", "True"]


def test_the_backend_follows_the_training_device_not_the_machine(monkeypatch):
    chosen = []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a CUDA machine
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: chosen.append(backend))
    monkeypatch.setattr(atexit, "register", lambda fn: fn)
    for device in ("cpu", None, "cuda"):
        distributed.init_from_env(device)
    assert chosen == ["gloo", "gloo", "nccl"]  # NCCL cannot reduce CPU tensors
