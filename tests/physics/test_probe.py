"""The probe: intensity contract, FWHM and d50 against Airy, coherence, JSON, agreement with abTEM."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import deepstem_utils as ds


def test_aberration_free_fwhm_is_airy():
    for energy, semiangle in [(80e3, 30.0), (60e3, 25.0), (200e3, 20.0)]:
        probe = ds.Probe(energy, semiangle)
        theory = 0.5145 * probe.wavelength / (semiangle * 1e-3)
        assert probe.fwhm() == pytest.approx(theory, rel=0.01)


def test_aberration_free_d50_is_airy():
    # the encircled energy of the Airy disc, 1 - J0(v)^2 - J1(v)^2, reaches 1/2 at v = 1.6500
    from scipy import optimize, special

    v50 = optimize.brentq(lambda v: 1 - special.j0(v) ** 2 - special.j1(v) ** 2 - 0.5, 1.0, 2.5)
    probe = ds.Probe(80e3, 30.0)
    theory = 2 * v50 * probe.wavelength / (2 * np.pi * 0.03)
    assert probe.d50() == pytest.approx(theory, rel=0.02)


def test_intensity_contract():
    probe = ds.Probe(energy=80e3, semiangle=30.0, aberrations={"C30": -1e4}, source_size=0.0)
    for shape in [(256, 256), (65, 90), (128, 37)]:
        psf = probe.intensity(shape=shape, sampling=0.16)
        assert psf.dtype == np.float64 and psf.shape == shape
        assert psf.sum() == pytest.approx(1.0, abs=1e-12)
        assert psf.min() >= 0
        assert np.unravel_index(np.argmax(psf), shape) == (shape[0] // 2, shape[1] // 2)


def test_intensity_accepts_anisotropic_sampling():
    psf = ds.Probe(80e3, 30.0).intensity((128, 128), (0.1, 0.15))
    assert psf.sum() == pytest.approx(1.0)


def test_undersampled_aperture_is_an_error():
    with pytest.raises(ValueError, match="Nyquist"):
        ds.Probe(80e3, 30.0).intensity((64, 64), 0.8)


def test_source_size_broadens_probe_and_keeps_normalisation():
    sharp = ds.Probe(80e3, 30.0)
    blurred = ds.Probe(80e3, 30.0, source_size=0.6)
    psf = blurred.intensity((128, 128), 0.05)
    assert psf.sum() == pytest.approx(1.0)
    assert blurred.fwhm() > sharp.fwhm() * 1.2


def test_smooth_aperture_edge_changes_probe_smoothly():
    """With a soft edge, a tiny change of semiangle gives a tiny change of the probe."""
    a = ds.Probe(80e3, 30.0).intensity((64, 64), 0.2)
    b = ds.Probe(80e3, 30.05).intensity((64, 64), 0.2)
    assert np.abs(a - b).sum() < 0.01


@pytest.mark.parametrize("bad", [{"semiangle": 0}, {"semiangle": -5}, {"source_size": -1}, {"energy": -1}])
def test_probe_rejects_bad_parameters(bad):
    kwargs = {"energy": 80e3, "semiangle": 30.0, **bad}
    with pytest.raises(ValueError):
        ds.Probe(**kwargs)


def test_json_round_trip(tmp_path):
    probe = ds.Probe(80e3, 28.0, {"C10": -20.0, "C12": 15.0, "phi12": 0.3, "C30": -1e4}, source_size=0.4)
    path = probe.to_json(tmp_path / "probe.json")
    data = json.loads(path.read_text())
    assert set(data) == {"energy", "semiangle", "aberrations", "source_size"}
    assert ds.Probe.from_json(path) == probe


def test_json_never_overwrites_without_permission(tmp_path):
    path = tmp_path / "probe.json"
    path.write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite"):
        ds.Probe(80e3, 30.0).to_json(path)
    assert path.read_text() == "precious"
    ds.Probe(80e3, 30.0).to_json(path, overwrite=True)
    assert ds.Probe.from_json(path).semiangle == 30.0


@pytest.mark.parametrize(
    "content,match",
    [
        ('{"energy": 80000, "semiangle": 30, "aberrations": {}}', "missing"),
        ('{"energy": 80000, "semiangle": 30, "aberrations": {}, "source_size": 0, "cs": 1}', "unknown"),
        ('{"energy": 80000, "semiangle": 30, "aberrations": {"Cs": 1}, "source_size": 0}', "unknown aberration"),
        ('{"energy": 80000, "semiangle": 30, "aberrations": [], "source_size": 0}', "aberrations"),
        ("not json", "not valid JSON"),
    ],
)
def test_bad_probe_json(tmp_path, content, match):
    path = tmp_path / "probe.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        ds.Probe.from_json(path)


def test_missing_probe_json(tmp_path):
    with pytest.raises(FileNotFoundError):
        ds.Probe.from_json(tmp_path / "nope.json")


# ----------------------------------------------------------------------------- abTEM
ABERRATION_SETS = [
    {},
    {"C10": -40.0},
    {"C12": 30.0, "phi12": 0.7},
    {"C21": 400.0, "phi21": -1.1},
    {"C23": 300.0, "phi23": 0.4},
    {"C10": -30.0, "C12": 20.0, "phi12": 0.4, "C21": 300.0, "phi21": 1.0, "C23": 250.0, "phi23": -0.3, "C30": -1e4},
    {"C32": 5e3, "phi32": 0.2, "C34": 4e3, "phi34": -0.5, "C45": 2e5, "phi45": 0.1, "C50": 1e6},
]


@pytest.mark.parametrize("aberrations", ABERRATION_SETS)
def test_probe_matches_abtem(aberrations):
    """Same energy, semiangle, aberrations and grid: normalised L1 difference < 2 %.

    abTEM indexes arrays (x, y); ours are (y, x), so its array is transposed.
    Asymmetric aberrations make the check sensitive to sign, angle and axis conventions.
    """
    abtem = pytest.importorskip("abtem")
    ny, nx, sampling = 96, 128, 0.1
    reference = abtem.Probe(energy=80e3, semiangle_cutoff=30.0, gpts=(nx, ny), sampling=sampling, **aberrations)
    waves = reference.build(scan=(nx // 2 * sampling, ny // 2 * sampling)).compute()
    expected = np.asarray(waves.intensity().array, dtype=float).T
    expected /= expected.sum()
    ours = ds.Probe(80e3, 30.0, aberrations).intensity((ny, nx), sampling)
    l1 = np.abs(ours - expected).sum() / expected.sum()
    assert l1 < 0.02, f"normalised L1 difference to abTEM {l1:.4f}"


def test_abtem_check_can_fail():
    """The comparison above is sensitive: a sign error in an odd aberration is caught."""
    abtem = pytest.importorskip("abtem")
    ny, nx, sampling = 96, 128, 0.1
    reference = abtem.Probe(energy=80e3, semiangle_cutoff=30.0, gpts=(nx, ny), sampling=sampling, C21=400.0, phi21=0.5)
    expected = np.asarray(reference.build(scan=(nx // 2 * sampling, ny // 2 * sampling)).compute().intensity().array).T
    expected = expected / expected.sum()
    wrong = ds.Probe(80e3, 30.0, {"C21": 400.0, "phi21": 0.5 + math.pi}).intensity((ny, nx), sampling)
    assert np.abs(wrong - expected).sum() > 0.1
