"""Zemlin tableaux simulated with abTEM, measured with the package: the independent check of chapter 2's solver.

A simulator and a solver written together can agree with each other and both be
wrong (a sign, an axis, the direction of the tilt, a unit). These tableaux come
from abTEM 1.0 alone: an amorphous carbon film (random atoms, 2 g/cm³, 3 nm)
projected by ``abtem.Potential``, its exit wave multiplied by the tilted plane
wave (the film's projected transmission function, no propagation through its thickness) and
passed through ``abtem.CTF`` with the aberrations, averaged over a
Gaussian focal spread from ``abtem.distributions.gaussian`` (each defocus an
incoherent member of the ensemble), then Poisson noise. abTEM's CTF is evaluated
at the wave's own spatial frequencies, so a tilted wave sees χ(τ + λk), as a
tilted beam does. :func:`deepstem_utils.measure_aberrations` then measures each
tableau; the table gives every coefficient with its error in reported standard
errors.

Conventions: abTEM's arrays are (x, y) (x along the first axis); the images are
transposed to the package's (row = y, column = x) and the tilts and aberration
angles are passed on exactly as abTEM took them. The tilts are rounded to
multiples of λ/L (L the box side) so that the tilted plane wave is periodic.

Run: .venv/bin/python benchmarks/zemlin_abtem.py [--size 512]   (about ten minutes on 2 cores)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from deepstem_utils import zemlin

ENERGY, SAMPLING, THICKNESS, DOSE, FOCAL_SPREAD = 80e3, 0.2, 30.0, 1e4, 30.0
OFFSET = -400.0  # recording defocus, as a C10 [Å]
SETS = {
    "A": {"C10": 120.0, "C12": 150.0, "phi12": 0.7, "C21": 1500.0, "phi21": -1.1, "C23": 1200.0, "phi23": 0.4,
          "C30": 2.0e4},
    "B": {"C10": -60.0, "C12": 90.0, "phi12": -1.2, "C21": 900.0, "phi21": 2.5, "C23": 700.0, "phi23": -0.8,
          "C30": -1.5e4},
    "C": {"C10": 30.0, "C12": 40.0, "phi12": 1.4, "C21": 400.0, "phi21": 0.6, "C23": 1800.0, "phi23": 2.0,
          "C30": 4.0e4},
}


def tilts_mrad(wavelength: float, extent: float) -> np.ndarray:
    """Untilted image plus rings at 10 and 20 mrad (6 each, the second staggered), rounded to λ/L steps."""
    step = wavelength / extent * 1e3  # [mrad]
    return np.round(zemlin.tableau_tilts((10.0, 20.0), 6) / step) * step


def simulate(abtem, atoms, aberrations: dict, tilts: np.ndarray, size: int, rng) -> np.ndarray:
    """One tableau in the package's convention (n, row = y, column = x), counts per pixel."""
    from abtem import distributions

    potential = abtem.Potential(atoms, gpts=(size, size), projection="infinite", slice_thickness=THICKNESS)
    # the film's transmission function (one slice, projected): the exit wave without a propagation through the
    # slice's thickness (abTEM's multislice would add it, a defocus of THICKNESS that the tableau then measures)
    exit_wave = np.asarray(potential.build().compute().transmission_function(ENERGY).compute().array)[0]  # [ix, iy]
    lam = abtem.core.energy.energy2wavelength(ENERGY)
    x, y = np.indices((size, size)) * SAMPLING  # abTEM: the first axis is x
    spread = distributions.gaussian(standard_deviation=FOCAL_SPREAD, num_samples=9, center=0.0).distributions[0]
    images = []
    for tx, ty in tilts * 1e-3:
        wave = abtem.Waves(exit_wave * np.exp(2j * np.pi * (tx * x + ty * y) / lam), energy=ENERGY,
                           sampling=SAMPLING)
        image = 0.0
        for dc10, weight in zip(spread.values, spread.weights):
            ctf = abtem.CTF(aberration_coefficients=dict(aberrations, C10=aberrations["C10"] + dc10), energy=ENERGY)
            image = image + weight * np.abs(wave.apply_ctf(ctf).compute().array) ** 2
        images.append(np.asarray(image).T)  # to (row = y, column = x)
    stack = np.array(images)
    return rng.poisson(stack / stack.mean() * DOSE * SAMPLING**2).astype(float)


def main():
    import abtem
    import ase

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="image side [px] (default 512)")
    args = parser.parse_args()
    rng = np.random.default_rng(1978)
    extent = args.size * SAMPLING
    lam = abtem.core.energy.energy2wavelength(ENERGY)
    tilts = tilts_mrad(lam, extent)
    print(f"abTEM {abtem.__version__}; {len(tilts)} tilts (rounded to {lam / extent * 1e3:.3f} mrad steps), "
          f"{args.size}² px at {SAMPLING} Å/px, {DOSE:g} e/Å² per image, focal spread {FOCAL_SPREAD} Å (1σ), "
          f"recorded at C10 = {OFFSET} Å")
    print("| set | coefficient | abTEM (true) | measured | ± 1σ | error / σ |")
    print("|---|---|---|---|---|---|")
    worst = 0.0
    for name, ab in SETS.items():
        n_atoms = int(round(2.0 / 12.011 * 6.02214076e23 * 1e-24 * extent**2 * THICKNESS))
        positions = rng.uniform(0, 1, (n_atoms, 3)) * [extent, extent, THICKNESS]
        atoms = ase.Atoms(f"C{n_atoms}", positions=positions, cell=[extent, extent, THICKNESS], pbc=True)
        stack = simulate(abtem, atoms, dict(ab, C10=ab["C10"] + OFFSET), tilts, args.size, rng)
        t0 = time.perf_counter()
        measured, sigma = zemlin.measure_aberrations(stack, tilts, ENERGY, SAMPLING, defocus_offset=OFFSET)
        seconds = time.perf_counter() - t0
        for symbol in ("C10", "C12", "C21", "C23", "C30", "C32", "C34"):
            z = zemlin.standard_error(ab, measured, sigma, symbol)
            worst = max(worst, z)
            angle = "phi" + symbol[1:]
            true = f"{ab.get(symbol, 0.0):.1f} Å" + (f" at {ab[angle]:.3f} rad" if angle in ab else "")
            meas = f"{measured[symbol]:.1f} Å" + (f" at {measured[angle]:.3f} rad" if angle in measured else "")
            unc = f"{sigma[symbol]:.1f} Å" + (f", {sigma[angle]:.3f} rad" if angle in sigma else "")
            print(f"| {name} | {symbol} | {true} | {meas} | {unc} | {z:.1f} |")
        print(f"| {name} | (seconds to measure) | | {seconds:.1f} | | |", flush=True)
    print(f"\nlargest error: {worst:.1f} standard errors")


if __name__ == "__main__":
    main()
