"""Weights files: the shipped ones match their record; corrupt and foreign files are refused."""

from __future__ import annotations

import json

import pytest
import torch

import deepstem_utils as ds
from deepstem_utils import network
from deepstem_utils.network import dataset
from deepstem_utils.network.reconstruction import reconstruct

PROBE = ds.Probe(energy=80e3, semiangle=30.0, aberrations={"C30": -1e4})


@pytest.fixture(scope="module")
def frame():
    return dataset.simulate_frame((160, 192), sampling=0.16, dose=1e4, probe=PROBE, rng=11)


def test_corrupt_and_foreign_weights(tmp_path, frame):
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a torch file")
    foreign = tmp_path / "foreign.pt"
    torch.save({"some": torch.zeros(3)}, foreign)
    for path, message in [(corrupt, "not a readable weights file"), (foreign, "not a DeepSTEM weights file"),
                          (tmp_path / "missing.pt", "not found")]:
        with pytest.raises((ValueError, FileNotFoundError), match=message):
            reconstruct(frame.counts, PROBE, sampling=0.16, weights=path)
    assert corrupt.read_bytes() == b"\x00not a torch file"  # nothing the user owns is changed


def test_shipped_weights_are_small_and_match_their_hash():
    import hashlib

    record = json.loads(network.WEIGHTS.with_suffix(".json").read_text())
    data = network.WEIGHTS.read_bytes()
    assert len(data) < 20e6
    assert hashlib.sha256(data).hexdigest() == record["sha256"]
    net, config = network.load_model()
    assert config == record["config"]
