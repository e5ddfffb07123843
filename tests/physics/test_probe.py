"""The probe: intensity contract, FWHM and d50 against Airy, coherence, JSON, agreement with abTEM."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

import deepstem_utils as ds
from deepstem_utils.physics.probe import focal_nodes, focal_spread_from


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
    assert set(data) == {"energy", "semiangle", "aberrations", "source_size", "focal_spread"}  # focal_spread: 0
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


# ------------------------------------------------------------------ partial temporal coherence
FOCAL_ABERRATIONS = {"C10": -30.0, "C12": 20.0, "phi12": 0.4, "C21": 300.0, "phi21": 1.0, "C23": 250.0,
                     "phi23": -0.3, "C30": -1e4}


def test_focal_spread_zero_is_the_coherent_probe_exactly():
    probe = ds.Probe(80e3, 30.0, FOCAL_ABERRATIONS, source_size=0.0, focal_spread=0.0)
    coherent = np.abs(probe.wave((96, 128), 0.1)) ** 2
    np.testing.assert_array_equal(probe.intensity((96, 128), 0.1), coherent / coherent.sum())
    assert ds.Probe(80e3, 30.0, FOCAL_ABERRATIONS) == probe  # the default is no spread


@pytest.mark.parametrize("spread", [20.0, 50.0, 100.0])
def test_focal_quadrature_is_converged(spread):
    """Twice the Gauss-Hermite nodes change the intensity by less than 0.1 % (normalised L1)."""
    probe = ds.Probe(80e3, 30.0, FOCAL_ABERRATIONS, focal_spread=spread)
    shape, sampling = (128, 128), 0.1
    used = probe.intensity(shape, sampling)
    nodes, _ = focal_nodes(spread, probe.cutoff_frequency, probe.wavelength)
    x, w = np.polynomial.hermite_e.hermegauss(2 * len(nodes))
    transfer = probe.transfer(shape, sampling)
    ky, kx = np.meshgrid(np.fft.fftfreq(128, sampling), np.fft.fftfreq(128, sampling), indexing="ij")
    dense = sum(wi * np.abs(np.fft.ifft2(transfer * np.exp(-1j * spread * xi * np.pi * probe.wavelength
                                                            * (kx**2 + ky**2)))) ** 2 for xi, wi in zip(x, w))
    dense = np.fft.fftshift(dense) / dense.sum()
    assert np.abs(used - dense).sum() < 1e-3
    # and the rule is not generous by accident: a third of the nodes is visibly wrong for a large spread
    if spread >= 50:
        x3, w3 = np.polynomial.hermite_e.hermegauss(max(2, len(nodes) // 3))
        coarse = sum(wi * np.abs(np.fft.ifft2(transfer * np.exp(-1j * spread * xi * np.pi * probe.wavelength
                                                                 * (kx**2 + ky**2)))) ** 2 for xi, wi in zip(x3, w3))
        coarse = np.fft.fftshift(coarse) / coarse.sum()
        assert np.abs(coarse - dense).sum() > 1e-3


def test_focal_spread_from_chromatic_aberration():
    # Cc = 1.4 mm, 0.3 eV FWHM (sigma 0.3 / 2.355 eV) at 80 keV: 1.4e7 Å * 0.12739 eV / 8e4 eV = 22.29 Å
    assert focal_spread_from(1.4e7, 0.3 / 2.3548, 80e3) == pytest.approx(22.29, abs=0.01)
    with pytest.raises(ValueError, match="energy"):
        focal_spread_from(1.4e7, 0.1, 0.0)


def test_focal_spread_lowers_and_widens_the_probe():
    sharp = ds.Probe(80e3, 30.0)
    spread = ds.Probe(80e3, 30.0, focal_spread=50.0)
    peak = spread.intensity((128, 128), 0.1).max() / sharp.intensity((128, 128), 0.1).max()
    assert 0.5 < peak < 0.62                     # about 0.56 of the coherent peak at 80 kV, 30 mrad, 50 Å
    assert spread.d50() > 1.6 * sharp.d50()      # the tails carry the current away
    with pytest.raises(ValueError, match="focal_spread"):
        ds.Probe(80e3, 30.0, focal_spread=-1.0)


def test_focal_spread_in_json(tmp_path):
    probe = ds.Probe(80e3, 30.0, {"C30": 1e4}, source_size=0.4, focal_spread=35.0)
    assert ds.Probe.from_json(probe.to_json(tmp_path / "p.json")) == probe
    old = tmp_path / "old.json"
    old.write_text('{"energy": 80000, "semiangle": 30, "aberrations": {}, "source_size": 0.5}')
    assert ds.Probe.from_json(old).focal_spread == 0.0   # the key is optional


@pytest.mark.parametrize("spread", [0.0, 30.0, 60.0])
def test_focal_spread_matches_abtems_defocus_ensemble(spread):
    """abTEM builds the same ensemble with a Gaussian distribution of defocus (its defocus is -C10, its
    standard_deviation our 1-sigma spread); the intensities are averaged with the distribution's weights."""
    abtem = pytest.importorskip("abtem")
    ny, nx, sampling = 96, 128, 0.1
    options = dict(FOCAL_ABERRATIONS)
    if spread:
        defocus = abtem.distributions.gaussian(standard_deviation=spread, num_samples=41,
                                               center=-options.pop("C10"), sampling_limit=4.0)
        options["defocus"] = defocus
    reference = abtem.Probe(energy=80e3, semiangle_cutoff=30.0, gpts=(nx, ny), sampling=sampling, **options)
    intensity = np.asarray(reference.build(scan=(nx // 2 * sampling, ny // 2 * sampling)).compute()
                           .intensity().array, dtype=float)
    if spread:
        weights = np.asarray(defocus.weights, float)
        intensity = np.tensordot(weights / weights.sum(), intensity, axes=1)
    expected = intensity.T / intensity.sum()
    ours = ds.Probe(80e3, 30.0, FOCAL_ABERRATIONS, focal_spread=spread).intensity((ny, nx), sampling)
    l1 = np.abs(ours - expected).sum()
    assert l1 < 0.02, f"normalised L1 difference to abTEM {l1:.4f}"
    if spread:  # and the comparison can fail: the coherent probe is far from the ensemble
        coherent = ds.Probe(80e3, 30.0, FOCAL_ABERRATIONS).intensity((ny, nx), sampling)
        assert np.abs(coherent - expected).sum() > 0.1
