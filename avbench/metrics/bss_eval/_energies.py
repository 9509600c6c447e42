"""The BSS-Eval energies: from the normal equations where that is precise enough, else from spectra."""

from __future__ import annotations

import torch

from ._projections import gram_times


def quadratic_energies(gram, d, est_energy, on_all, on_own):
    """Energies from the normal equations alone, and a bound on their rounding error.

    With c the filter, the projection energy 2 c.d - c.Tc and the residual
    e.e - 2 c.d + c.Tc are exact to second order in the solver's error, like
    mir_eval's time-domain residuals. The interference (c_all - c_own).T(c_all - c_own)
    is not, so it gains 2 (c_all - c_own).(d - T c_all), the first-order term of
    c_all's error, which leaves it second order too. Residuals are differences of
    energies, so their rounding grows as they shrink: `bound` says how much.
    """
    s = d.shape[1]
    t_all = gram_times(gram, on_all)  # [N, S, S_est, L]
    t_own = gram_times(gram, on_own.unsqueeze(1) * torch.eye(s, dtype=d.dtype, device=d.device)[:, :, None, None])
    # t_own[n, i', i, j]: T applied to the filter of estimate j on reference i alone
    own_gram = t_own.diagonal(dim1=1, dim2=2).permute(0, 3, 1, 2)  # [N, i, j, L]
    quad_own, cross_own = on_own * own_gram, on_own * d
    quad_all, cross_all = on_all * t_all, on_all * d
    target = 2 * cross_own.sum(-1) - quad_own.sum(-1)
    projection = 2 * cross_all.sum((1, 3)) - quad_all.sum((1, 3))  # [N, S_est]
    eye = torch.eye(s, dtype=d.dtype, device=d.device)[None, :, :, None, None]
    diff = on_all.unsqueeze(2) - eye * on_own.unsqueeze(1)  # [N, i', i, j, L]
    correction = 2 * (d - t_all).unsqueeze(2)  # the first-order term: twice the joint system's residual
    t_diff = t_all.unsqueeze(2) - t_own + correction
    interference = (diff * t_diff).sum((1, 4))
    energies = dict(
        target=target,
        own_residual=est_energy.unsqueeze(1) - target,
        interference=interference,
        projection=projection.unsqueeze(1),
        all_residual=(est_energy - projection).unsqueeze(1),
    )
    terms_own = 2 * cross_own.abs().sum(-1) + quad_own.abs().sum(-1)
    terms_all = 2 * cross_all.abs().sum((1, 3)) + quad_all.abs().sum((1, 3))
    pairs = [
        (terms_own, target),
        (terms_all, projection),
        (est_energy.unsqueeze(1) + terms_own, energies["own_residual"]),
        (est_energy + terms_all, energies["all_residual"][:, 0]),
        ((diff.abs() * (t_all.unsqueeze(2).abs() + t_own.abs() + correction.abs())).sum((1, 4)), interference),
    ]
    ratios = [torch.where(terms == 0, 0.0, terms / value.abs()).flatten(1).amax(1) for terms, value in pairs]
    return energies, torch.stack(ratios).amax(0)  # 0 where a value is exactly 0 from exactly 0 terms


def spectral_energies(ref_spec, est_spec, on_all, on_own, n_fft):
    """Energies of the projections' spectra (Parseval): residuals are formed sample by sample, as in mir_eval."""
    proj_all = (torch.fft.rfft(on_all, n_fft) * ref_spec.unsqueeze(2)).sum(1).unsqueeze(1)  # [N, 1, S_est, F]
    proj_own = torch.fft.rfft(on_own, n_fft) * ref_spec.unsqueeze(2)  # [N, S_ref, S_est, F]
    est_spec = est_spec.unsqueeze(1)
    return dict(
        target=_energy(proj_own, n_fft),
        own_residual=_energy(est_spec - proj_own, n_fft),
        interference=_energy(proj_all - proj_own, n_fft),
        projection=_energy(proj_all, n_fft),
        all_residual=_energy(est_spec - proj_all, n_fft),
    )


def _energy(spectrum: torch.Tensor, n_fft: int) -> torch.Tensor:
    """sum_t x[t]^2 from rfft(x, n_fft) (Parseval)."""
    total = 2 * torch.linalg.vector_norm(torch.view_as_real(spectrum), dim=(-2, -1)).square()
    edges = spectrum[..., 0].abs().square()
    if n_fft % 2 == 0:
        edges = edges + spectrum[..., -1].abs().square()
    return (total - edges) / n_fft
