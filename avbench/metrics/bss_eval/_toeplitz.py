"""Block Toeplitz normal equations, solved exactly: block Levinson, with dense LU behind it.

The exact solver. The fast path (`_projections`) uses it for each reference's
own system, and falls back to it for a joint system that conjugate gradients
do not solve; LU takes over only where the recursion finds a Gram that is not
numerically positive definite, as mir_eval solves every system.
"""

from __future__ import annotations

import numpy as np
import torch

_BLOCK_WIDTH = 16  # unknowns per Levinson block: fewer, larger steps cost less than many tiny ones


def _block_levinson(lags: torch.Tensor, rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve T x = y for SPD block Toeplitz T with blocks T[a, b] = lags[a - b], lags[-k] = lags[k]^T.

    lags: [N, K, m, m]; rhs: [N, K, m, M]. Returns x [N, K, m, M] and a bool [N]
    mask of the systems that were not numerically positive definite. The
    forward predictor and the solution share one buffer (one product gives
    both residuals); the backward predictor is right-aligned in its buffer, so
    neither is ever shifted. Every step factors the backward and forward
    error covariances together.
    """
    n, k_blocks, m, _ = lags.shape
    kw = dict(dtype=lags.dtype, device=lags.device)
    fwd_x = torch.zeros(n, k_blocks * m, m + rhs.shape[-1], **kw)
    fwd, x = fwd_x[..., :m], fwd_x[..., m:]
    bwd = torch.zeros(n, k_blocks * m, m, **kw)
    fwd[:, :m] = torch.eye(m, **kw)
    bwd[:, -m:] = torch.eye(m, **kw)
    # row p of `reversed_lags` holds lag K-1-p, so lags k+1..1 form one contiguous slice
    reversed_lags = lags.flip(1).permute(0, 2, 1, 3).reshape(n, m, k_blocks * m)
    covariances = torch.cat([lags[:, 0], lags[:, 0]])  # backward, forward
    factors, info = torch.linalg.cholesky_ex(covariances)
    failed = (info[:n] > 0) | (info[n:] > 0)
    x[:, :m] = torch.cholesky_solve(rhs[:, 0], factors[:n])
    for k in range(k_blocks - 1):
        top = (k + 1) * m
        lag_row = reversed_lags[:, :, (k_blocks - 2 - k) * m : (k_blocks - 1) * m]
        residual = torch.bmm(lag_row, fwd_x[:, :top])
        delta, miss = residual[..., :m], rhs[:, k + 1] - residual[..., m:]
        deltas = torch.cat([delta, delta.mT])
        gains = torch.cholesky_solve(deltas, factors).neg_()  # alpha (forward), beta (backward)
        bwd_update = torch.bmm(fwd[:, :top], gains[n:])
        fwd[:, m : top + m].add_(torch.bmm(bwd[:, -top:], gains[:n]))
        bwd[:, -top - m : -m].add_(bwd_update)
        covariances += torch.bmm(deltas.mT, gains).roll(n, 0)
        factors, info = torch.linalg.cholesky_ex(covariances)
        failed |= (info[:n] > 0) | (info[n:] > 0)
        x[:, : top + m].add_(torch.bmm(bwd[:, -top - m :], torch.cholesky_solve(miss, factors[:n])))
    return x.reshape(n, k_blocks, m, -1), failed


def _symmetric_levinson(lags: torch.Tensor, rhs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`_block_levinson` for a symmetric Toeplitz T (one reference), with half its work.

    Such a T is persymmetric (J T J = T), so the backward predictor is the
    forward one reversed, and the backward error covariance the forward one
    reversed: only the forward predictor is updated and factored. The lag rows
    and right-hand sides are taken reversed once, so that the residuals come
    out reversed, as the reversed covariance needs them.
    """
    n, k_blocks, m, _ = lags.shape
    kw = dict(dtype=lags.dtype, device=lags.device)
    fwd_x = torch.zeros(n, k_blocks * m, m + rhs.shape[-1], **kw)
    fwd, x = fwd_x[..., :m], fwd_x[..., m:]
    fwd[:, :m] = torch.eye(m, **kw)
    reversed_rows = lags.flip(1).permute(0, 2, 1, 3).flip(1).reshape(n, m, k_blocks * m)  # row m-1-a of each lag
    reversed_rhs = rhs.flip(2)
    covariance = lags[:, 0].clone()
    factor, info = torch.linalg.cholesky_ex(covariance)
    infos = [info]
    x[:, :m] = torch.cholesky_solve(rhs[:, 0], factor)
    for k in range(k_blocks - 1):
        top = (k + 1) * m
        residual = torch.bmm(reversed_rows[:, :, (k_blocks - 2 - k) * m : (k_blocks - 1) * m], fwd_x[:, :top])
        delta = residual[..., :m]  # J delta
        gain = torch.cholesky_solve(delta, factor)  # -J alpha
        fwd[:, m : top + m].sub_(torch.bmm(fwd[:, :top], gain).flip(1))
        covariance.baddbmm_(delta.mT, gain, alpha=-1)
        factor, info = torch.linalg.cholesky_ex(covariance)
        infos.append(info)
        miss = torch.cholesky_solve(reversed_rhs[:, k + 1] - residual[..., m:], factor)
        x[:, : top + m].add_(torch.bmm(fwd[:, : top + m], miss).flip(1))
    return x.reshape(n, k_blocks, m, -1), (torch.stack(infos) > 0).any(0)


def _dense(lags: torch.Tensor) -> torch.Tensor:
    """The full block Toeplitz matrix of `lags` [N, K, m, m]."""
    n, k_blocks, m, _ = lags.shape
    index = torch.arange(k_blocks, device=lags.device)
    diff = index[:, None] - index[None, :]
    blocks = lags[:, diff.abs()]
    blocks = torch.where((diff >= 0)[None, :, :, None, None], blocks, blocks.mT)
    return blocks.permute(0, 1, 3, 2, 4).reshape(n, k_blocks * m, k_blocks * m)


def _solve_as_mir_eval(lags: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Dense LU solve (least squares if singular), one system at a time, as mir_eval does.

    Only for Grams the recursion finds not numerically positive definite.
    """
    matrices = _dense(lags).cpu().numpy()
    vectors = rhs.reshape(rhs.shape[0], -1, rhs.shape[-1]).cpu().numpy()
    out = []
    for a, b in zip(matrices, vectors, strict=True):
        try:
            out.append(np.linalg.solve(a, b))
        except np.linalg.LinAlgError:
            out.append(np.linalg.lstsq(a, b, rcond=None)[0])
    return torch.from_numpy(np.stack(out)).to(rhs).view(rhs.shape)


def _toeplitz_systems(rho: torch.Tensor, d: torch.Tensor, q: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Normal equations in block Toeplitz form, q lags per block.

    rho[n, i, j, l] = sum_t s_i[t] s_j[t + l] and d[n, i, v, l] = sum_t s_i[t] e_v[t + l],
    l = 0..L-1. Unknowns are ordered (lag, source); returns lags [N, L/q, qS, qS]
    and right-hand sides [N, L/q, qS, V] (one column per estimate).
    """
    n, s, _, length = rho.shape
    # lag q*K + alpha - beta may be negative inside a block: rho_ij(-u) = rho_ji(u)
    extended = torch.cat([rho.transpose(1, 2)[..., 1:q].flip(-1), rho], -1)
    k_index = torch.arange(length // q, device=rho.device)[:, None, None]
    within = torch.arange(q, device=rho.device)
    lag = q * k_index + within[None, :, None] - within[None, None, :] + (q - 1)
    lags = extended[..., lag].permute(0, 3, 4, 1, 5, 2).reshape(n, length // q, q * s, q * s)
    rhs = d.reshape(n, s, d.shape[2], length // q, q).permute(0, 3, 4, 1, 2).reshape(n, length // q, q * s, -1)
    return lags, rhs


def solve(rho: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Filters [N, S, V, L] solving the normal equations of `_toeplitz_systems`."""
    n, s, v, length = d.shape
    q = max(q for q in range(1, max(1, _BLOCK_WIDTH // s) + 1) if length % q == 0)
    lags, rhs = _toeplitz_systems(rho, d, q)
    x, failed = (_symmetric_levinson if s == 1 else _block_levinson)(lags, rhs)
    if failed.any():
        x[failed] = _solve_as_mir_eval(lags[failed], rhs[failed])
    return x.reshape(n, length, s, v).permute(0, 2, 3, 1)
