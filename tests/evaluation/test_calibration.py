"""Where a network puts one S atom: measured and stored beside its weights."""

from __future__ import annotations

from deepstem_utils import evaluation, network


def test_network_one_atom_level_is_measured_and_stored(tmp_path):

    # the shipped network's level, measured on one frame, lies in the band find_atoms accepts ...
    level = evaluation.measure_one_atom_fraction(weights=network.WEIGHTS, doses=(1e5,), n_frames=1, shape=(256, 256),
                                                 progress=False)
    assert 0.3 <= level["one_atom_fraction"] <= 0.8 and level["frames"] == 1
    # ... the shipped networks carry theirs beside their weights, and evaluation starts find_atoms there
    for method, path in (("deepstem", network.WEIGHTS), ("supervised_unet", network.SUPERVISED_WEIGHTS)):
        stored = network.weights_calibration(path)["one_atom_fraction"]
        assert evaluation.one_atom_fraction(method) == stored and 0.3 <= stored <= 0.8
    assert evaluation.one_atom_fraction("raw") == 0.5
    assert network.weights_calibration(tmp_path / "no_such.pt") == {}
