"""Least-squares projection filters: each reference alone, and all references jointly.

Each reference's own system is symmetric Toeplitz, solved by persymmetric
block Levinson; the joint system by conjugate gradients preconditioned with
the own systems' inverses (Gohberg-Semencul, applied by FFT), handed to block
Levinson for any mixture that does not converge.
"""

from __future__ import annotations

import torch

from ._toeplitz import solve


def gram_spectrum(rho: torch.Tensor) -> torch.Tensor:
    """[N, S, S, F]: spectra of the two-sided lags -(L-1)..L-1 of rho, for products with the Gram by FFT."""
    length = rho.shape[-1]
    two_sided = torch.cat([rho.transpose(1, 2).flip(-1)[..., :-1], rho], -1)
    return torch.fft.rfft(two_sided, 2 * length)


def gram_times(gram: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """T c for the Gram T of the references' delays (`gram` from `gram_spectrum`); [N, S, *V, L] -> [N, S, *V, L]."""
    length = filters.shape[-1]
    spec = torch.fft.rfft(filters, 2 * length)
    gram = gram.reshape(*gram.shape[:3], *([1] * (spec.ndim - 3)), gram.shape[-1])
    product = (gram * spec.unsqueeze(1)).sum(2)
    return torch.fft.irfft(product, 2 * length)[..., length - 1 : 2 * length - 1]


def _toeplitz_inverse(first_column: torch.Tensor) -> torch.Tensor:
    """T^-1 of a symmetric Toeplitz T from g = T^-1 e_1 [..., L] (Gohberg-Semencul), as spectra [..., 2, F].

    T^-1 = (A(g) A(g)^T - A(h) A(h)^T) / g_0, where A(v) is the lower triangular
    Toeplitz matrix with first column v and h = (0, g_{L-1}, ..., g_1). The
    spectra are those of g / sqrt(g_0) and h / sqrt(g_0).
    """
    length = first_column.shape[-1]
    shifted = torch.cat([torch.zeros_like(first_column[..., :1]), first_column[..., 1:].flip(-1)], -1)
    generators = torch.stack([first_column, shifted], -2) / first_column[..., None, :1].sqrt()
    return torch.fft.rfft(generators, 2 * length)


def _apply_toeplitz_inverse(inverse: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """T^-1 r for r [..., V, L], `inverse` [..., 2, F] from `_toeplitz_inverse`: four triangular products by FFT."""
    length = r.shape[-1]
    inverse = inverse.unsqueeze(-3)  # [..., 1, 2, F]
    transposed = torch.fft.irfft(inverse.conj() * torch.fft.rfft(r, 2 * length).unsqueeze(-2), 2 * length)
    products = torch.fft.rfft(transposed[..., :length], 2 * length) * inverse  # A(v) A(v)^T r for v = g, h
    return torch.fft.irfft(products.select(-2, 0) - products.select(-2, 1), 2 * length)[..., :length]


def _conjugate_gradients(
    gram, d, on_own, inverse, est_energy, max_steps: int, tolerance: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Filters onto all references [N, S, V, L] and a bool [N]: the mixtures whose iteration converged.

    Conjugate gradients on the Gram, preconditioned by its block diagonal: each
    reference's own Toeplitz inverse. The steps needed then depend on how far
    the references' delay spaces are from orthogonal, not on how ill-conditioned
    each one is (about a digit per step on music and on the synthetic world).
    The preconditioned d is the own-reference solution, already at hand. The
    iteration stops when r.M^-1 r <= tolerance e.e for every estimate, which
    bounds the projection energy's error by that over the least eigenvalue of
    M^-1 T; after `max_steps` steps it gives up.
    """
    tiny = torch.finfo(d.dtype).tiny  # a zero estimate has rz = 0 from the start: steps of 0, not 0 / 0
    x, r, z = torch.zeros_like(d), d.clone(), on_own
    direction = z.clone()
    rz = torch.linalg.vecdot(r, z).sum(1)  # [N, V]
    goal = tolerance * est_energy
    for _ in range(max_steps):
        running = rz > goal  # a converged estimate stops moving, so its result never depends on its batch
        if not running.any():
            break
        product = gram_times(gram, direction)
        step = (running * rz / torch.linalg.vecdot(direction, product).sum(1).clamp_min(tiny))[:, None, :, None]
        x.addcmul_(step, direction)
        r.addcmul_(step, product, value=-1)
        z = _apply_toeplitz_inverse(inverse, r)
        rz_next = torch.linalg.vecdot(r, z).sum(1)
        direction = z.addcmul_((rz_next / rz.clamp_min(tiny))[:, None, :, None], direction)
        rz = rz_next
    return x, (rz <= goal).all(1) & x.isfinite().flatten(1).all(1)


def projection_filters(
    rho: torch.Tensor,
    gram: torch.Tensor,
    d: torch.Tensor,
    est_energy: torch.Tensor,
    max_cg_steps: int,
    cg_tolerance: float,
):
    """Least-squares filters [N, S_ref, S_est, L]: onto all references, and onto each reference alone.

    Each reference alone is a symmetric Toeplitz system, solved by block
    Levinson with e_1 as one more right-hand side: its inverse's first column
    preconditions the joint system, solved by conjugate gradients. A mixture
    whose iteration does not converge within `max_cg_steps` is solved by block
    Levinson instead.
    """
    n, s, v, length = d.shape
    own = rho.diagonal(dim1=1, dim2=2).mT.reshape(n * s, 1, 1, length)
    unit = torch.zeros(n * s, 1, 1, length, dtype=d.dtype, device=d.device)
    unit[..., 0] = 1
    solved = solve(own, torch.cat([d.reshape(n * s, 1, v, length), unit], 2)).view(n, s, v + 1, length)
    on_own = solved[:, :, :v]
    if s == 1:  # one reference: the same projection, as in mir_eval
        return on_own, on_own
    on_all, converged = _conjugate_gradients(
        gram, d, on_own, _toeplitz_inverse(solved[:, :, v]), est_energy, max_cg_steps, cg_tolerance
    )
    exact = ~converged
    if exact.any():
        on_all[exact] = solve(rho[exact], d[exact])
    return on_all, on_own
