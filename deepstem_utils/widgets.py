"""ipywidgets explorers for the chapters.

Each explorer is a live widget in Jupyter and, in the static book, a PNG of
its current state (its ``_repr_mimebundle_`` carries both; the book's
configuration prefers the image, so the page needs no widget JavaScript).
"""

from __future__ import annotations

import base64
import dataclasses

import matplotlib.pyplot as plt
import numpy as np
from IPython.display import display

from .book import figure_png
from .physics.imaging import linear_image
from .physics.optics import aberration_phase
from .physics.probe import Probe
from .plotting import column_figure, show_image, tableau_montage
from .zemlin.diffractogram import diffractogram
from .zemlin.tableau import amorphous_carbon, simulate_tableau

__all__ = ["ProbeExplorer", "TableauExplorer"]


class _Explorer:
    """Shared plumbing: redraw into an Output widget; show a PNG snapshot in static pages."""

    dpi = 80

    def figure(self):  # pragma: no cover - implemented by subclasses
        raise NotImplementedError

    def _label(self) -> str:  # pragma: no cover
        return type(self).__name__

    def _update(self, change=None):
        self.output.clear_output(wait=True)
        with self.output:
            fig = self.figure()
            display(fig)
            plt.close(fig)

    def _png(self) -> str:
        """The snapshot as the book shows every figure (:func:`book.figure_png`: the smallest text recorded)."""
        fig = self.figure()
        png = figure_png(fig)
        plt.close(fig)
        return base64.b64encode(png).decode()

    def _repr_mimebundle_(self, **kwargs):
        bundle = dict(self.widget._repr_mimebundle_(**kwargs) or {})
        bundle["image/png"] = self._png()
        bundle["text/plain"] = self._label()
        return bundle



class ProbeExplorer(_Explorer):
    """Sliders for the probe-forming optics, with the probe and the image they give.

    Parameters
    ----------
    obj : (ny, nx) ndarray
        Object function to image.
    sampling : float
        Pixel size [Å].
    energy : float
        Beam energy [eV].
    semiangle : float
        Initial convergence semiangle [mrad].
    defocus : float
        Initial defocus [nm] (= -C10 / 10).
    C12, C23 : float
        Initial two-fold and three-fold astigmatism [nm].
    C30 : float
        Initial spherical aberration [µm].
    focal_spread : float
        Initial focal spread (1σ) [Å]: partial temporal coherence.
    psf_extent : float
        Side of the square on which the probe is computed [Å].
    """

    def __init__(
        self,
        obj: np.ndarray,
        sampling: float,
        energy: float = 80e3,
        semiangle: float = 30.0,
        defocus: float = 0.0,
        C12: float = 0.0,
        C23: float = 0.0,
        C30: float = 0.0,
        focal_spread: float = 0.0,
        psf_extent: float = 24.0,
    ):
        import ipywidgets as w

        self.obj = np.asarray(obj, float)
        self.sampling = float(sampling)
        self.energy = float(energy)
        n = int(round(psf_extent / self.sampling)) // 2 * 2 + 1
        self.psf_shape = (n, n)
        style = {"description_width": "150px"}
        layout = w.Layout(width="420px")
        self.sliders = {
            "semiangle": w.FloatSlider(semiangle, min=10, max=40, step=0.5, description="semiangle α [mrad]"),
            "defocus": w.FloatSlider(defocus, min=-20, max=20, step=0.5, description="defocus Δf [nm]"),
            "C12": w.FloatSlider(C12, min=0, max=20, step=0.5, description="C12 astigmatism [nm]"),
            "C23": w.FloatSlider(C23, min=0, max=500, step=10, description="C23 3-fold [nm]"),
            "C30": w.FloatSlider(C30, min=-20, max=20, step=0.5, description="C30 = Cs [µm]"),
            "focal_spread": w.FloatSlider(focal_spread, min=0, max=80, step=5,
                                          description="focal spread σ [Å]"),
        }
        for s in self.sliders.values():
            s.style, s.layout, s.continuous_update = style, layout, False
        self.output = w.Output()
        for s in self.sliders.values():
            s.observe(self._update, names="value")
        self.widget = w.VBox([w.HBox([w.VBox(list(self.sliders.values()))]), self.output])
        self._update()

    # ------------------------------------------------------------------ state
    @property
    def values(self) -> dict:
        return {k: s.value for k, s in self.sliders.items()}

    def probe(self, **values) -> Probe:
        """The probe for slider values (current ones by default)."""
        v = {**self.values, **values}
        aberrations = {"C10": -v["defocus"] * 10.0, "C12": v["C12"] * 10.0, "C23": v["C23"] * 10.0, "C30": v["C30"] * 1e4}
        return Probe(self.energy, v["semiangle"], aberrations, focal_spread=v["focal_spread"])

    def figure(self, **values):
        """Draw probe, aberration phase and image for the given (or current) slider values."""
        probe = self.probe(**values)
        psf = probe.intensity(self.psf_shape, self.sampling)
        image = linear_image(self.obj, psf)
        fig, axes = column_figure(2, 2, colorbar=True)
        axes = axes.ravel()
        c = self.psf_shape[0] // 2
        r = int(round(6.0 / self.sampling))
        crop = psf[c - r : c + r + 1, c - r : c + r + 1]
        im = show_image(axes[0], crop, self.sampling, "probe intensity |P|²", cmap="inferno",
                        label="fraction per pixel", scalebar=2.0)  # fmt: skip
        im.set_extent([-r * self.sampling - self.sampling / 2, r * self.sampling + self.sampling / 2] * 2)
        coherent = dataclasses.replace(probe, focal_spread=0.0).intensity(self.psf_shape, self.sampling).max()
        axes[0].set_title(f"probe: d50 {probe.d50():.2f} Å, peak {psf.max() / coherent:.2f}× coherent")
        # aberration phase inside the aperture
        m = 129
        k = np.linspace(-1, 1, m) * probe.cutoff_frequency
        ky, kx = np.meshgrid(k, k, indexing="ij")
        chi = aberration_phase(np.hypot(kx, ky) * probe.wavelength, np.arctan2(ky, kx), probe.wavelength, probe.aberrations)
        chi = np.where(np.hypot(kx, ky) <= probe.cutoff_frequency, chi, np.nan)
        amax = probe.semiangle
        p = axes[1].imshow(chi / np.pi, cmap="twilight_shifted", extent=[-amax, amax, amax, -amax], vmin=-4, vmax=4)
        axes[1].set_xlabel("α_x [mrad]")
        axes[1].set_ylabel("α_y [mrad]")
        axes[1].set_title("aberration phase χ in the aperture")
        plt.colorbar(p, ax=axes[1], fraction=0.046, pad=0.04).set_label("χ / π")
        show_image(axes[2], image, self.sampling, "linear image |P|² ⊛ O", label="detected fraction")
        radius = (np.arange(r + 1)) * self.sampling
        axes[3].plot(radius, psf[c, c:c + r + 1] / psf.max(), color="tab:red", label="along x")
        axes[3].plot(radius, psf[c:c + r + 1, c] / psf.max(), color="tab:blue", ls="--", label="along y")
        axes[3].axvline(probe.d50() / 2, color="0.4", lw=0.8)
        axes[3].set(xlabel="distance from the centre [Å]", ylabel="intensity / peak", yscale="log", ylim=(1e-4, 1.5),
                    title="probe profile (grey: d50 / 2)")
        axes[3].legend()
        return fig

    def _label(self) -> str:
        return f"ProbeExplorer({', '.join(f'{k}={v:g}' for k, v in self.values.items())})"


class TableauExplorer(_Explorer):
    """Change one aberration and watch a (noiseless, small) Zemlin tableau change.

    Parameters
    ----------
    tilts : (n, 2) array_like
        Beam tilts [mrad].
    energy : float
        Beam energy [eV].
    base : dict
        Aberrations kept fixed (e.g. the recording defocus ``C10``) [Å, rad].
    shape, sampling :
        Image size [px] and pixel size [Å] of the simulated tableau.
    """

    #: slider ranges [Å] of the aberration that can be changed
    RANGES = {"C12": (0, 400), "C21": (0, 4000), "C23": (0, 4000), "C30": (-1e5, 1e5)}

    def __init__(self, tilts, energy: float = 80e3, base: dict | None = None, shape=(256, 256), sampling: float = 0.2,
                 symbol: str = "C21", value: float = 2000.0):
        import ipywidgets as w

        self.tilts = np.asarray(tilts, float)
        self.energy = float(energy)
        self.base = dict(base or {"C10": -300.0})
        self.shape, self.sampling = tuple(shape), float(sampling)
        self.specimen = amorphous_carbon(self.shape, self.sampling, self.energy, rng=0)
        self.which = w.Dropdown(options=list(self.RANGES), value=symbol, description="aberration")
        lo, hi = self.RANGES[symbol]
        self.value = w.FloatSlider(value, min=lo, max=hi, step=(hi - lo) / 100, description="value [Å]",
                                   continuous_update=False, layout=w.Layout(width="420px"))  # fmt: skip
        self.which.observe(self._range, names="value")
        self.value.observe(self._update, names="value")
        self.output = w.Output()
        self.widget = w.VBox([w.HBox([self.which, self.value]), self.output])
        self._update()

    def _range(self, change):
        lo, hi = self.RANGES[self.which.value]
        self.value.min, self.value.max = min(lo, self.value.min), max(hi, self.value.max)
        self.value.min, self.value.max = lo, hi
        self.value.step = (hi - lo) / 100
        self._update()

    def figure(self):
        ab = dict(self.base)
        ab[self.which.value] = self.value.value
        stack = simulate_tableau(ab, self.tilts, self.energy, self.shape, self.sampling, dose=np.inf,
                                 focal_spread=30.0, angular_spread=0.0, specimen=self.specimen, quadrature=(None, 1))  # fmt: skip
        spectra = [diffractogram(img, tile=self.shape[0]) for img in stack]
        side = plt.rcParams["figure.figsize"][0]
        fig = plt.figure(figsize=(side, side))
        tableau_montage(fig, spectra, self.tilts, 1 / (self.shape[0] * self.sampling), k_max=0.7,
                        title=f"{self.which.value} = {self.value.value:g} Å (recorded at C10 = {self.base.get('C10', 0):g} Å)")
        return fig

    dpi = 70

    def _label(self) -> str:
        return f"TableauExplorer({self.which.value}={self.value.value:g} Å)"
