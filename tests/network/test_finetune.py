"""Self-supervised training on your own frames: electron counts, held-out loss, augmentation, resume, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import deepstem_utils as ds
from deepstem_utils.network import dataset, finetune, model
from deepstem_utils.physics import imaging

TINY = dict(steps=12, batch=2, crop=64, eval_every=4, patience=10, holdout=0.25)


@pytest.fixture(scope="module")
def detector_frame():
    """A 256² frame recorded by an analogue detector (gain 20 counts/e⁻, dark offset 500 counts)."""
    return dataset.simulate_frame((256, 256), sampling=0.16, dose=2e4, rng=3,
                                  acquisition=imaging.Acquisition(gain=20.0, offset=500.0))


def test_electron_counts_undoes_gain_and_offset(detector_frame):
    electrons, record = finetune.electron_counts(detector_frame.counts, gain=20.0, offset=500.0)
    truth = (detector_frame.counts - 500.0) / 20.0
    np.testing.assert_array_equal(electrons, truth)
    assert not record["estimated"] and record["gain"] == 20.0
    estimated, record = finetune.electron_counts(detector_frame.counts)
    assert record["estimated"] and record["offset"] == pytest.approx(500.0, abs=30)


def test_a_frame_without_shot_noise_is_refused():
    rng = np.random.default_rng(0)
    smooth = 1000 + 100 * np.sin(np.arange(256) / 7.0)[None, :] + rng.normal(0, 3.0, (256, 256))  # constant noise
    with pytest.raises(ValueError, match="shot-noise"):
        finetune.electron_counts(smooth)
    with pytest.raises(ValueError, match="NaN"):
        finetune.electron_counts(np.full((64, 64), np.nan))


def test_flips_and_turns_commute_with_the_decoder():
    """Augmenting a crop needs the same flip or turn of the probe: then the decoder commutes with it."""
    rng = np.random.default_rng(1)
    obj = rng.random((40, 40))
    psf = rng.random((9, 9))
    psf /= psf.sum()
    as_t = lambda a: torch.from_numpy(np.ascontiguousarray(a))[None, None]  # noqa: E731
    image = model.decode(as_t(obj), as_t(psf))[0, 0].numpy()
    for k in range(8):
        turned = model.decode(as_t(finetune.dihedral(obj, k)), as_t(finetune.dihedral(psf, k)))[0, 0].numpy()
        np.testing.assert_allclose(turned, finetune.dihedral(image, k), atol=1e-12)
    # and it can fail: the frame turned without the probe is another image
    wrong = model.decode(as_t(finetune.dihedral(obj, 1)), as_t(psf))[0, 0].numpy()
    assert np.abs(wrong - finetune.dihedral(image, 1)).max() > 1e-3


def test_finetuning_lowers_the_heldout_loss(detector_frame, tmp_path):
    """From random weights (``init="none"``) a dozen steps must lower the loss on the held-out rows; the shipped
    weights already fit a frame of their own simulator, so that a few steps from them need not (chapter 9
    measures the gain from them on a real frame)."""
    net, record = finetune.finetune([detector_frame.counts], detector_frame.probe, 0.16, tmp_path / "ft",
                                    init="none", progress=False, **TINY)
    losses = [r["heldout_nll"] for r in record["log"]]
    assert record["log"][0]["step"] == 0 and min(losses[1:]) < losses[0]  # the random weights were step 0
    assert record["heldout_nll_per_pixel"] == min(losses)                   # the best weights are kept
    saved = json.loads((tmp_path / "ft" / "deepstem.json").read_text())
    assert saved["probe"] == detector_frame.probe.to_dict() and saved["detector"][0]["estimated"]
    obj = ds.reconstruct(detector_frame.counts, detector_frame.probe, sampling=0.16,
                         weights=tmp_path / "ft" / "deepstem.pt")
    assert obj.shape == (256, 256) and np.all(np.isfinite(obj))


def test_resume_after_a_kill_equals_an_uninterrupted_run(detector_frame, tmp_path):
    options = dict(TINY, steps=8, eval_every=4)
    _, full = finetune.finetune([detector_frame.counts], detector_frame.probe, 0.16, tmp_path / "full",
                                progress=False, **options)
    # a run killed after its first checkpoint: the checkpoint is what it leaves
    finetune.finetune([detector_frame.counts], detector_frame.probe, 0.16, tmp_path / "killed", progress=False,
                      **dict(options, steps=4))
    (tmp_path / "killed" / "deepstem.pt").unlink()
    state = torch.load(tmp_path / "killed" / "checkpoint_finetune.pt", weights_only=True)
    state["config"]["options"]["steps"] = 8  # what the killed run had been asked for
    torch.save(state, tmp_path / "killed" / "checkpoint_finetune.pt")
    _, resumed = finetune.finetune([detector_frame.counts], detector_frame.probe, 0.16, tmp_path / "killed",
                                   resume=True, progress=False, **options)
    assert [r["heldout_nll"] for r in resumed["log"]] == [r["heldout_nll"] for r in full["log"]]
    assert resumed["sha256"] == full["sha256"]


@pytest.mark.parametrize("change, error, match", [
    ({"frames": [np.ones((3, 64, 64))]}, ValueError, "2-D"),
    ({"frames": [np.full((256, 256), np.nan)]}, ValueError, "NaN"),
    ({"frames": [np.zeros((100, 100))]}, ValueError, "too small|shot-noise|electrons"),
    ({"sampling": 0.5}, ValueError, "working range"),
    ({"probe": {"energy": 80e3}}, TypeError, "Probe"),
    ({"frames": []}, ValueError, "no frames"),
])
def test_bad_input_is_refused_before_any_work(detector_frame, tmp_path, change, error, match):
    args = {"frames": [detector_frame.counts], "probe": detector_frame.probe, "sampling": 0.16}
    args.update(change)
    with pytest.raises(error, match=match):
        finetune.finetune(args["frames"], args["probe"], args["sampling"], tmp_path / "out", progress=False, **TINY)
    assert not (tmp_path / "out").exists()


def test_existing_weights_are_never_overwritten(detector_frame, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "deepstem.pt").write_bytes(b"my own weights")
    with pytest.raises(FileExistsError, match="overwrite"):
        finetune.finetune([detector_frame.counts], detector_frame.probe, 0.16, out, progress=False, **TINY)
    assert (out / "deepstem.pt").read_bytes() == b"my own weights"
