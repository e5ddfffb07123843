"""Self-supervised training: loss, batches, checkpoints, resume, the command line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from deepstem_utils.network import train

TINY = {**train.QUICK_CONFIG, "steps": 12, "batch": 2, "crop": 48, "checkpoint_every": 4, "validation_frames": 1,
        "base": 8}


def _weights(net):
    return torch.cat([p.detach().flatten() for p in net.state_dict().values()])


def test_same_seed_is_bit_identical(tmp_path):
    a, log_a = train.train(TINY, tmp_path / "a", progress=False)
    b, log_b = train.train(TINY, tmp_path / "b", progress=False)
    assert torch.equal(_weights(a), _weights(b))
    assert [r["train_loss"] for r in log_a] == [r["train_loss"] for r in log_b]
    c, _ = train.train({**TINY, "seed": 1}, tmp_path / "c", progress=False)
    assert not torch.equal(_weights(a), _weights(c))


def test_resume_after_a_kill_equals_uninterrupted(tmp_path, monkeypatch):
    whole, _ = train.train(TINY, tmp_path / "whole", progress=False)
    real = train.make_batch

    def dies_at_step_9(config, index):
        if index == 9:
            raise KeyboardInterrupt("killed")
        return real(config, index)

    monkeypatch.setattr(train, "make_batch", dies_at_step_9)
    with pytest.raises(KeyboardInterrupt):
        train.train(TINY, tmp_path / "killed", progress=False)
    monkeypatch.setattr(train, "make_batch", real)
    state = torch.load(tmp_path / "killed" / "checkpoint.pt", weights_only=True)
    assert state["step"] == 8  # the last checkpoint before the kill
    with pytest.raises(FileExistsError, match="--resume"):
        train.train(TINY, tmp_path / "killed", progress=False)
    resumed, log = train.train(TINY, tmp_path / "killed", resume=True, progress=False)
    assert torch.equal(_weights(whole), _weights(resumed))
    assert [r["step"] for r in log] == [0, 4, 8, 12]  # step 0: the untrained network


def test_split_target_is_independent_of_the_input():
    batch = train.make_batch({**TINY, "batch": 4, "crop": 64}, 0)
    x = batch["inputs"][:, 0].numpy().ravel()
    y = batch["target"][:, 0].numpy().ravel()
    same = train.make_batch({**TINY, "batch": 4, "crop": 64, "target": "same"}, 0)
    # the split target correlates with its input only through the signal; the 'same' target is the input
    assert np.array_equal(same["inputs"][:, 0].numpy().ravel(), same["target"][:, 0].numpy().ravel())
    assert not np.array_equal(x, y)
    assert torch.allclose(batch["target"].mean(), torch.tensor(1.0), atol=0.1)


def test_bad_config():
    with pytest.raises(ValueError, match="unknown training option"):
        train.check_config({"stepz": 3})
    with pytest.raises(ValueError, match="target"):
        train.check_config({"target": "truth"})
    for power in (0.5, 2.5):
        with pytest.raises(ValueError, match="em_power"):
            train.check_config({"em_power": power})
    assert train.check_config({"em_power": 2})["em_power"] == 2


def test_cli_quick_run_and_refusals(tmp_path, capsys):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"steps": 4, "batch": 2, "crop": 48, "checkpoint_every": 2,
                                  "validation_frames": 1, "base": 8}))
    out = tmp_path / "run"
    assert train.main(["--config", str(config), "--out", str(out), "--quick"]) == 0
    record = json.loads((out / "deepstem.json").read_text())
    assert record["config"]["steps"] == 4 and len(record["sha256"]) == 64
    before = (out / "deepstem.pt").read_bytes()
    (out / "checkpoint.pt").unlink()
    assert train.main(["--config", str(config), "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert (out / "deepstem.pt").read_bytes() == before  # not overwritten
    afile = tmp_path / "a_file"
    afile.write_text("mine")
    assert train.main(["--config", str(config), "--out", str(afile)]) == 2
    assert afile.read_text() == "mine"


def test_supervised_target_is_the_ground_truth_and_learns(tmp_path):
    config = {**TINY, "target": "supervised", "sparsity": 0.0}
    batch = train.make_batch({**config, "batch": 2, "crop": 64}, 0)
    assert torch.equal(batch["target"], batch["obj"])  # scored against the truth, not against counts
    self_supervised = train.make_batch({**TINY, "batch": 2, "crop": 64, "target": "same"}, 0)
    assert torch.equal(batch["inputs"], self_supervised["inputs"])  # the same frames and the same input
    # a run writes its own files next to DeepSTEM's, never over them
    out = tmp_path / "weights"
    train.train(TINY, out, progress=False)
    before = (out / "deepstem.pt").read_bytes()
    _, log = train.train({**config, "steps": 40, "checkpoint_every": 20, "lr": 3e-3}, out, progress=False)
    assert (out / "supervised_unet.pt").is_file() and (out / "deepstem.pt").read_bytes() == before
    assert log[-1]["val_loss"] < log[0]["val_loss"]  # relative MSE against the truth falls


def test_supervised_loss_is_relative_mse():
    truth = torch.rand(2, 1, 8, 8)
    assert float(train.supervised_loss(truth, truth)) == 0.0
    assert float(train.supervised_loss(torch.zeros_like(truth), truth)) == pytest.approx(1.0)
    assert float(train.supervised_loss(2 * truth, truth)) == pytest.approx(1.0)


def test_the_committed_config_retrains_reproducibly(tmp_path):
    """The shipped weights' configuration, shortened: two runs give the same weights file (SHA-256), and every
    physics range and the architecture of the config are used (stem, depth, em_steps recorded)."""
    from pathlib import Path

    from deepstem_utils.network import weights

    config = json.loads((Path(weights.WEIGHTS).with_name("train_config.json")).read_text())
    short = {**config, "steps": 3, "batch": 2, "crop": 48, "checkpoint_every": 3, "validation_frames": 1}
    train.train(short, tmp_path / "a", progress=False)
    train.train(short, tmp_path / "b", progress=False)
    a = json.loads((tmp_path / "a" / "deepstem.json").read_text())
    b = json.loads((tmp_path / "b" / "deepstem.json").read_text())
    assert a["sha256"] == b["sha256"]
    keys = ("stem", "depth", "em_steps", "em_in_training")
    filled = train.check_config(config)  # the committed file may leave keys at their defaults
    assert {k: train.check_config(a["config"])[k] for k in keys} == {k: filled[k] for k in keys}


def test_a_warm_start_begins_where_its_weights_are(tmp_path):
    first, _ = train.train(TINY, tmp_path / "first", progress=False)
    warm, log = train.train({**TINY, "steps": 4, "init": str(tmp_path / "first" / "deepstem.pt"), "seed": 3},
                            tmp_path / "warm", progress=False)
    cold, cold_log = train.train({**TINY, "steps": 4, "seed": 3}, tmp_path / "cold", progress=False)
    # step 0 scores the starting weights on the same held-out frames: the warm start is the first run's network
    assert log[0]["val_loss"] != cold_log[0]["val_loss"]
    with pytest.raises(ValueError, match="architecture"):
        train.train({**TINY, "base": 16, "init": str(tmp_path / "first" / "deepstem.pt")}, tmp_path / "bad",
                    progress=False)
