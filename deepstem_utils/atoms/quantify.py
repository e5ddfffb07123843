"""Column intensities from a joint fit of the image model at known column positions.

Integrating an image over a disk around each column (what :func:`find_atoms`
does on an object map) mixes in the tails of the neighbours, and a network's
object need not be linear in the atoms at all. With the column positions known,
the counts themselves can be fitted by the linear image model

.. math::

    \\lambda(\\mathbf r) = b + \\sum_i a_i\\, k(\\mathbf r - \\mathbf r_i),

where :math:`k` is the image of one column (the probe intensity for a HAADF
frame, normalised to unit sum), :math:`b` a constant background and :math:`a_i`
the counts column :math:`i` scatters onto the detector. The model is linear in
the :math:`a_i`, so they are linear in the number of atoms of each column (one
S atom lies half-way between an empty site and S₂) and the overlap of
neighbouring columns is undone, not integrated. The fit is the Gaussian
approximation of the Poisson likelihood (iteratively reweighted least squares
with the variance of every pixel equal to its expected counts); it is what
model-based quantification (StatSTEM) does with Gaussian columns.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.linalg import LinearOperator, cg

__all__ = ["column_intensities", "refine_positions", "gaussian_kernel"]


def gaussian_kernel(sigma: float, size: int | None = None) -> np.ndarray:
    """A circular 2-D Gaussian of unit sum, centred on pixel ``size // 2``.

    Parameters
    ----------
    sigma : float
        Standard deviation [px].
    size : int, optional
        Side of the kernel [px]; ``2 * ceil(4 sigma) + 1`` if not given.
    """
    if not np.isfinite(sigma) or sigma <= 0:
        raise ValueError(f"sigma must be a positive number of pixels, got {sigma}")
    size = int(2 * np.ceil(4 * sigma) + 1) if size is None else int(size)
    r = np.arange(size) - size // 2
    g = np.exp(-0.5 * (r[:, None] ** 2 + r[None, :] ** 2) / sigma**2)
    return g / g.sum()


def _patch_radius(kernel: np.ndarray, fraction: float) -> int:
    """Smallest radius [px] around the kernel's centre pixel that holds ``fraction`` of its sum."""
    k = np.clip(kernel, 0, None)
    c = np.array(k.shape) // 2
    yy, xx = np.indices(k.shape)
    r = np.hypot(yy - c[0], xx - c[1]).ravel()
    order = np.argsort(r)
    cumulative = np.cumsum(k.ravel()[order]) / k.sum()
    return int(np.ceil(r[order][np.searchsorted(cumulative, fraction)]))


#: Sub-pixel positions are quantised to 1/STEPS px (the kernel is precomputed at these shifts): 1/32 px at most.
STEPS = 16
#: Fraction of each Gauss-Newton step taken in refine_positions (overlapping columns are updated one by one).
DAMPING = 0.7


def _shift_table(kernel: np.ndarray, radius: int) -> np.ndarray:
    """The kernel shifted by every quantised sub-pixel offset (cubic spline), cut to a (side, side) patch.

    Shape ``(STEPS + 1, STEPS + 1, side, side)``, indexed by the y and x offsets in steps of 1/STEPS px.
    Cached: a frame's refinement and fits use the same kernel several times.
    """
    kernel = np.ascontiguousarray(kernel, dtype=float)
    return _cached_shift_table(kernel.tobytes(), kernel.shape, radius)


@lru_cache(maxsize=8)
def _cached_shift_table(data: bytes, shape: tuple, radius: int) -> np.ndarray:
    kernel = np.frombuffer(data).reshape(shape)

    c = np.array(kernel.shape) // 2
    pad = radius + 2
    padded = ndimage.spline_filter(np.pad(kernel, pad), order=3, mode="constant")  # once, not per shift
    side = 2 * radius + 1
    d = np.arange(side) - radius
    shifts = np.arange(-STEPS // 2, STEPS // 2 + 1) / STEPS
    table = np.empty((len(shifts), len(shifts), side, side))
    for a, fy in enumerate(shifts):
        for b, fx in enumerate(shifts):
            yy, xx = np.meshgrid(c[0] + pad + d - fy, c[1] + pad + d - fx, indexing="ij")
            table[a, b] = ndimage.map_coordinates(padded, [yy, xx], order=3, mode="constant", prefilter=False)
    table.setflags(write=False)
    return table


def _patches(shape, x_px: np.ndarray, y_px: np.ndarray, radius: int):
    """Where each column's patch lies: flat pixel index ``(n, side, side)``, inside-frame mask, table offsets."""
    ny, nx = shape
    d = np.arange(2 * radius + 1) - radius
    ix, iy = np.round(x_px).astype(int), np.round(y_px).astype(int)
    qx = np.round((x_px - ix) * STEPS).astype(int) + STEPS // 2
    qy = np.round((y_px - iy) * STEPS).astype(int) + STEPS // 2
    py = np.broadcast_to(iy[:, None, None] + d[None, :, None], (len(ix), len(d), len(d)))
    px = np.broadcast_to(ix[:, None, None] + d[None, None, :], (len(ix), len(d), len(d)))
    keep = (py >= 0) & (py < ny) & (px >= 0) & (px < nx)
    return np.where(keep, py * nx + px, 0), keep, qy, qx


def _design(shape, x_px: np.ndarray, y_px: np.ndarray, kernel: np.ndarray, radius: int):
    """Sparse design matrix (pixels × columns + 1), compressed by column: each column's kernel at its sub-pixel
    position, then ones."""
    ny, nx = shape
    index, keep, qy, qx = _patches(shape, x_px, y_px, radius)
    values = _shift_table(kernel, radius)[qy, qx]               # (n, side, side)
    n = len(x_px)
    # compressed by column, built directly: each patch's pixel indices increase in C order (rows, then columns
    # within a row), so a column's entries are already sorted; the background column holds every pixel
    per_column = keep.reshape(n, -1).sum(axis=1)
    indptr = np.concatenate([[0], np.cumsum(per_column), [per_column.sum() + ny * nx]])
    indices = np.concatenate([index[keep], np.arange(ny * nx)])
    vals = np.concatenate([values[keep], np.ones(ny * nx)])
    return sparse.csc_matrix((vals, indices, indptr), shape=(ny * nx, n + 1))


def _poisson_weights(expected: np.ndarray, data: np.ndarray) -> np.ndarray:
    """1 / variance of every pixel: its expected count (floored, so empty pixels do not dominate)."""
    return 1.0 / np.maximum(expected, max(0.5, 0.05 * float(np.mean(data))))


def column_intensities(image: np.ndarray, x, y, kernel: np.ndarray, sampling: float, *, fraction: float = 0.95,
                       reweight: int = 2, return_errors: bool = False):
    """Counts scattered by every column, fitted jointly at known positions.

    Parameters
    ----------
    image : (ny, nx) ndarray
        The frame [counts] (electrons for the Poisson weights; any linear scale works).
    x, y : (n,) array_like
        Column positions [Å] (x along columns, y along rows; pixel centres at ``i * sampling``).
    kernel : (k, k) ndarray
        Image of one column [any scale; normalised here to unit sum], centred on
        pixel ``k // 2``: the probe intensity (:meth:`Probe.intensity`) for a
        HAADF frame, or a Gaussian (:func:`gaussian_kernel`).
    sampling : float
        Pixel size [Å].
    fraction : float
        Each column's kernel is cut to the smallest disk holding this fraction of
        it; the rest (a smooth halo over the whole frame) goes into the background.
    reweight : int
        Rounds of reweighting (0: unweighted least squares).
    return_errors : bool
        Also return the standard error of every ``a_i``, from the weighted
        residuals (so it holds for any detector gain) and the diagonal of the
        normal matrix (overlap with neighbours ignored: a lower bound for
        overlapping columns, accurate for an isolated one).

    Returns
    -------
    intensities : (n,) ndarray
        Fitted ``a_i`` [image units × pixels]: the integrated counts of each column
        (NaN for a column whose image lies entirely outside the frame).
    background : float
        Fitted constant ``b`` [image units per pixel].
    errors : (n,) ndarray
        Standard errors of ``intensities`` (only with ``return_errors``).

    Examples
    --------
    >>> k = gaussian_kernel(2.0)
    >>> image = np.full((40, 40), 3.0)
    >>> image[10:10 + k.shape[0], 12:12 + k.shape[1]] += 500 * k      # a column at x = 20 px, y = 18 px
    >>> a, b = column_intensities(image, [20 * 0.1], [18 * 0.1], k, 0.1)
    >>> round(float(a[0])), round(b, 2)     # the kernel is cut at 95 % of its sum: its far tail goes to b
    (500, 3.0)
    """
    image = np.asarray(image, dtype=float)
    if image.ndim != 2:
        raise ValueError(f"image must be 2-D, got shape {image.shape}")
    if not np.all(np.isfinite(image)):
        raise ValueError("image contains NaN or inf")
    kernel = np.asarray(kernel, dtype=float)
    if kernel.ndim != 2 or not np.all(np.isfinite(kernel)) or kernel.sum() <= 0:
        raise ValueError("kernel must be a finite 2-D image with a positive sum")
    x_px = np.asarray(x, dtype=float) / sampling
    y_px = np.asarray(y, dtype=float) / sampling
    if x_px.shape != y_px.shape or x_px.ndim != 1:
        raise ValueError("x and y must be 1-D and of the same length")
    if len(x_px) == 0:
        return (np.zeros(0), float(np.mean(image))) + ((np.zeros(0),) if return_errors else ())
    kernel = kernel / kernel.sum()
    radius = max(_patch_radius(kernel, fraction), 2)
    A = _design(image.shape, x_px, y_px, kernel, radius)
    data = image.ravel()
    poisson = image.min() >= 0
    weights = np.ones_like(data)
    # a column whose kernel lies (almost) entirely outside the frame cannot be measured: NaN
    inside = np.asarray(A.sum(axis=0)).ravel() > 1e-3
    A_in = A[:, np.flatnonzero(inside)]       # compressed by column: selecting columns is cheap
    AT = A_in.T                                 # compressed by row (a transpose, no copy)
    A_rows = A_in.tocsr()                       # the product below needs the rows
    solution = np.full(A.shape[1], np.nan)
    for _ in range(1 + (reweight if poisson else 0)):
        # the normal equations: sparse (each column overlaps only its neighbours, plus the background)
        # A^T W with W diagonal: each pixel's entries scaled (the index arrays are shared, not copied)
        ATw = sparse.csr_matrix((AT.data * weights[AT.indices], AT.indices, AT.indptr), shape=AT.shape)
        normal = (ATw @ A_rows).tocsr()
        # symmetric positive definite and nearly diagonal: conjugate gradients with a Jacobi preconditioner
        jacobi = 1.0 / normal.diagonal()
        precondition = LinearOperator(normal.shape, matvec=lambda v: jacobi * v)
        start = None if np.isnan(solution[inside]).any() else solution[inside]
        solution[inside], _ = cg(normal, ATw @ data, x0=start, M=precondition, rtol=1e-10, atol=0.0,
                                 maxiter=5000)
        expected = A_in @ solution[inside]
        weights = _poisson_weights(expected, data)
    if not return_errors:
        return solution[:-1], float(solution[-1])
    w = _poisson_weights(expected, data) if poisson else np.ones_like(data)
    scale = float(np.sum(w * (data - expected) ** 2)) / max(len(data) - A_in.shape[1], 1)
    squared = sparse.csc_matrix((A.data ** 2, A.indices, A.indptr), shape=A.shape)
    information = np.where(inside, np.asarray(squared.T @ w).ravel(), 0.0)[:-1]
    errors = np.full(len(information), np.nan)
    measured = information > 0
    errors[measured] = np.sqrt(scale / information[measured])
    return solution[:-1], float(solution[-1]), errors


def _patch_dot(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Sum over each column's patch of ``u * v``, both ``(n, side, side)``: one value per column."""
    return np.einsum("npq,npq->n", u, v)


def _kernel_gradient(kernel: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """d/dy and d/dx of a kernel [per px], by the Fourier derivative (exact for a band-limited kernel)."""
    ny, nx = kernel.shape
    spectrum = np.fft.fft2(np.fft.ifftshift(kernel))
    fy, fx = np.fft.fftfreq(ny)[:, None], np.fft.fftfreq(nx)[None, :]
    dy = np.fft.fftshift(np.fft.ifft2(2j * np.pi * fy * spectrum).real)
    dx = np.fft.fftshift(np.fft.ifft2(2j * np.pi * fx * spectrum).real)
    return dy, dx


def refine_positions(image: np.ndarray, x, y, kernel: np.ndarray, sampling: float, *, iterations: int = 3,
                     max_shift: float = 0.3, significance: float = 5.0, fraction: float = 0.95, movable=None):
    """Column positions refined against the counts by the linear image model (Gauss-Newton).

    The model of :func:`column_intensities` is fitted at the given positions (no
    reweighting); then, ``iterations`` times, every column that scatters
    significantly (``a_i`` at least ``significance`` standard errors) takes
    :data:`DAMPING` of the Gauss-Newton step for its own amplitude and position,
    with the Poisson weights and the other columns held fixed (a 3 × 3 system per
    column). The counts, not a reconstruction's peak, then decide where a column
    is, as precisely as the Cramér-Rao bound allows. Columns too faint to place
    (empty sites, noise) keep their positions. Refit the intensities at the
    returned positions (:func:`column_intensities`) to use them.

    Parameters
    ----------
    image : (ny, nx) ndarray
        The frame [counts].
    x, y : (n,) array_like
        Starting positions [Å], e.g. the peaks of an object map.
    kernel : (k, k) ndarray
        Image of one column (probe intensity), centred on pixel ``k // 2``.
    sampling : float
        Pixel size [Å].
    iterations : int
        Gauss-Newton rounds.
    max_shift : float
        No column moves farther than this from its start [Å] (a column that wants
        to is not where the start says: it keeps its start).
    significance : float
        Columns with ``a_i < significance × SE`` are not moved.
    fraction : float
        Kernel cut, as in :func:`column_intensities`. The cut-off halo of a bright
        neighbour stays in the residual and pulls a faint column slightly (about
        1-2 pm for a column a third as bright 1.8 Å away at 0.95, far below the
        Cramér-Rao bound at the doses of interest); 0.999 removes it, at a cost in time.
    movable : (n,) array_like of bool, optional
        Columns that may move (default: all); the others are fitted in place.

    Returns
    -------
    x, y : (n,) ndarray
        Refined positions [Å].
    moved : (n,) ndarray of bool
        Which columns were refined.

    Examples
    --------
    >>> k = gaussian_kernel(3.0)
    >>> image = np.full((48, 48), 2.0)
    >>> yy, xx = np.indices(image.shape)
    >>> image += 800 * np.exp(-0.5 * ((xx - 20.3) ** 2 + (yy - 24.6) ** 2) / 9) / (2 * np.pi * 9)
    >>> x, y, moved = refine_positions(image, [20 * 0.1], [24 * 0.1], k, 0.1)
    >>> round(float(x[0]), 2), round(float(y[0]), 2), bool(moved[0])      # true: 2.03, 2.46 Å
    (2.03, 2.46, True)
    """
    image = np.asarray(image, dtype=float)
    x0 = np.asarray(x, dtype=float).copy()
    y0 = np.asarray(y, dtype=float).copy()
    if iterations < 0 or not max_shift > 0:
        raise ValueError("iterations must be >= 0 and max_shift > 0 [Å]")
    x_new, y_new = x0.copy(), y0.copy()
    moved = np.zeros(len(x0), bool)
    movable = np.ones(len(x0), bool) if movable is None else np.asarray(movable, bool)
    if movable.shape != x0.shape:
        raise ValueError("movable must have one entry per column")
    if len(x0) == 0 or iterations == 0:
        return x_new, y_new, moved
    kernel = np.asarray(kernel, dtype=float)
    kernel = kernel / kernel.sum()
    radius = max(_patch_radius(kernel, fraction), 2)
    table = _shift_table(kernel, radius)
    k_dy, k_dx = _kernel_gradient(kernel)
    table_dy, table_dx = _shift_table(k_dy, radius), _shift_table(k_dx, radius)
    data = image.ravel()
    poisson = image.min() >= 0
    # intensities and their errors at the start (unweighted: only which columns to move and the size of their
    # steps depend on them); the steps hold them fixed (a sub-pixel move changes them little)
    a, b, err = column_intensities(image, x_new, y_new, kernel, sampling, fraction=fraction, reweight=0,
                                   return_errors=True)
    strong = movable & np.isfinite(a) & (a >= significance * np.nan_to_num(err, nan=np.inf))
    amplitude = np.where(np.isfinite(a), a, 0.0)
    for _ in range(iterations if strong.any() else 0):
        index, keep, qy, qx = _patches(image.shape, x_new / sampling, y_new / sampling, radius)
        k, kx, ky = (t[qy, qx] * keep for t in (table, table_dx, table_dy))
        expected = b + np.bincount(index.ravel(), (amplitude[:, None, None] * k).ravel(), minlength=data.size)
        w = _poisson_weights(expected, data) if poisson else np.ones_like(data)
        rw = (w * (data - expected))[index] * keep          # weighted residual on each patch
        wp = w[index] * keep
        # d lambda / d (a_i, x_i, y_i) = (k, -a_i dk/dx, -a_i dk/dy) at (r - r_i): a Gauss-Newton step for each
        # column with the others held (3 x 3 systems; repeated, the amplitudes of overlapping columns settle too)
        # the 3 x 3 normal matrix and gradient of every column from six weighted sums over its patch (the
        # Jacobian's rows k, -a kx, -a ky are not stacked: that copy cost more than the sums)
        a_ = -amplitude
        kw, kxw = k * wp, kx * wp
        kk, kkx, kky = _patch_dot(k, kw), _patch_dot(kx, kw), _patch_dot(ky, kw)
        kxkx, kxky, kyky = _patch_dot(kx, kxw), _patch_dot(ky, kxw), _patch_dot(ky, ky * wp)
        H = np.stack([np.stack([kk, a_ * kkx, a_ * kky], 1),
                      np.stack([a_ * kkx, a_ ** 2 * kxkx, a_ ** 2 * kxky], 1),
                      np.stack([a_ * kky, a_ ** 2 * kxky, a_ ** 2 * kyky], 1)], 1)       # (n, 3, 3)
        g = np.stack([_patch_dot(k, rw), a_ * _patch_dot(kx, rw), a_ * _patch_dot(ky, rw)], 1)
        ok = strong & (np.linalg.det(H) > 0)
        step = np.zeros((len(x_new), 3))
        if ok.any():
            step[ok] = DAMPING * np.linalg.solve(H[ok], g[ok][:, :, None])[:, :, 0]
        amplitude = np.where(ok, amplitude + step[:, 0], amplitude)
        sx, sy = np.where(ok, np.clip(step[:, 1], -0.5, 0.5), 0.0), np.where(ok, np.clip(step[:, 2], -0.5, 0.5), 0.0)
        x_new, y_new = x_new + sx * sampling, y_new + sy * sampling
        moved |= ok
    far = np.hypot(x_new - x0, y_new - y0) > max_shift
    x_new[far], y_new[far] = x0[far], y0[far]
    moved &= ~far
    return x_new, y_new, moved
