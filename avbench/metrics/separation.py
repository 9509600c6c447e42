"""BSS-Eval v3 source metrics (SDR, SIR, SAR) and SI-SDR, batched in torch float64.

The semantics are mir_eval.separation.bss_eval_sources: each estimate is
projected by least squares onto the delays 0..L-1 of its own reference, and
onto those of all references; the projections split it into target,
interference and artifacts. mir_eval builds and solves each normal equation
densely, in O((S L)^3), once per estimate. Here a mixture's correlations come
once from short overlap-save FFTs; each reference's own Toeplitz system is
solved by a block Levinson recursion that uses its symmetry, and the joint
system by conjugate gradients preconditioned with those own systems' inverses
(Gohberg-Semencul, by FFT), with block Levinson behind it for any mixture that
does not converge. Energies come from the normal equations, to second order in
the solver's error; where a residual is too small for that to keep ~1e-8 dB,
they come from the projections' spectra instead, residual sample by residual
sample, as mir_eval forms them in time.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools

import numpy as np
import scipy.fft
import torch

from ..errors import DataError, SuiteError
from .base import Metric, MetricCard, MetricValue, ScoringInputs

SILENCE_THRESHOLD = 1e-5  # DAVIS: a source with sum|x| <= this makes its mixture unscorable
DEFAULT_FILTER_LENGTH = 512
AGGREGATION = "mean over sources, then over mixtures; DAVIS averaged per batch"
REFERENCE = "mir_eval.separation.bss_eval_sources (v3 sources)"
_CHUNK_BYTES = 256 * 2**20  # bound on the exact-energy spectra of the chunks scored at once (one per worker)
_BLOCK_WIDTH = 16  # unknowns per Levinson block: fewer, larger steps cost less than many tiny ones
_MAX_ROUNDING = 1e4  # (terms / result) above which energies come from spectra: ~1e-8 dB at 1e-13 rounding
_CG_TOLERANCE = 1e-16  # r.M^-1 r / e.e at which conjugate gradients stop: far below the rounding above
_CG_MAX_STEPS = 64  # beyond, the references' delay spaces nearly coincide: block Levinson solves it instead


def _as_batch(x, name: str) -> torch.Tensor:
    """[S, T] or [B, S, T] numpy/torch -> float64 tensor [B, S, T] on the input's device."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.asarray(x))
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3 or t.shape[-1] == 0 or t.shape[-2] == 0:
        raise DataError(f"{name}: expected shape [S, T] or [B, S, T], got {tuple(t.shape)}")
    return t.to(torch.float64)


def _pair(reference, estimate) -> tuple[torch.Tensor, torch.Tensor, bool]:
    ref, est = _as_batch(reference, "reference"), _as_batch(estimate, "estimate")
    if ref.shape != est.shape:
        raise DataError(f"reference {tuple(ref.shape)} and estimate {tuple(est.shape)} must have the same shape")
    return ref, est.to(ref.device), np.ndim(reference) == 2


def _silent(ref: torch.Tensor, est: torch.Tensor) -> torch.Tensor:
    def quiet(x):
        return torch.linalg.vector_norm(x, 1, dim=-1) <= SILENCE_THRESHOLD
    return (quiet(ref) | quiet(est)).any(-1)


def silent_mixtures(reference, estimate) -> np.ndarray:
    """bool [B] (or a scalar for [S, T] input): the mixture has a source with sum|x| <= 1e-5."""
    ref, est, single = _pair(reference, estimate)
    mask = _silent(ref, est).cpu().numpy()
    return mask[0] if single else mask


@contextlib.contextmanager
def _single_threaded_ops(device: torch.device):
    """Yield how many worker threads to run, each issuing single-threaded torch ops.

    Most ops here are small (the recursion is a long chain of them), and
    intra-op threading only adds barriers, which stall badly on a busy
    machine; on CPU the cores are used by splitting the mixtures instead.
    """
    if device.type != "cpu":
        yield 1
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield threads
    finally:
        torch.set_num_threads(threads)


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
        lag_row = reversed_lags[:, :, (k_blocks - 2 - k) * m:(k_blocks - 1) * m]
        residual = torch.bmm(lag_row, fwd_x[:, :top])
        delta, miss = residual[..., :m], rhs[:, k + 1] - residual[..., m:]
        deltas = torch.cat([delta, delta.mT])
        gains = torch.cholesky_solve(deltas, factors).neg_()  # alpha (forward), beta (backward)
        bwd_update = torch.bmm(fwd[:, :top], gains[n:])
        fwd[:, m:top + m].add_(torch.bmm(bwd[:, -top:], gains[:n]))
        bwd[:, -top - m:-m].add_(bwd_update)
        covariances += torch.bmm(deltas.mT, gains).roll(n, 0)
        factors, info = torch.linalg.cholesky_ex(covariances)
        failed |= (info[:n] > 0) | (info[n:] > 0)
        x[:, :top + m].add_(torch.bmm(bwd[:, -top - m:], torch.cholesky_solve(miss, factors[:n])))
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
        residual = torch.bmm(reversed_rows[:, :, (k_blocks - 2 - k) * m:(k_blocks - 1) * m], fwd_x[:, :top])
        delta = residual[..., :m]  # J delta
        gain = torch.cholesky_solve(delta, factor)  # -J alpha
        fwd[:, m:top + m].sub_(torch.bmm(fwd[:, :top], gain).flip(1))
        covariance.baddbmm_(delta.mT, gain, alpha=-1)
        factor, info = torch.linalg.cholesky_ex(covariance)
        infos.append(info)
        miss = torch.cholesky_solve(reversed_rhs[:, k + 1] - residual[..., m:], factor)
        x[:, :top + m].add_(torch.bmm(fwd[:, :top + m], miss).flip(1))
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
    for a, b in zip(matrices, vectors):
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


def _solve(rho: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Filters [N, S, V, L] solving the normal equations of `_toeplitz_systems`."""
    n, s, v, length = d.shape
    q = max(q for q in range(1, max(1, _BLOCK_WIDTH // s) + 1) if length % q == 0)
    lags, rhs = _toeplitz_systems(rho, d, q)
    x, failed = (_symmetric_levinson if s == 1 else _block_levinson)(lags, rhs)
    if failed.any():
        x[failed] = _solve_as_mir_eval(lags[failed], rhs[failed])
    return x.reshape(n, length, s, v).permute(0, 2, 3, 1)


def _gram_spectrum(rho: torch.Tensor) -> torch.Tensor:
    """[N, S, S, F]: spectra of the two-sided lags -(L-1)..L-1 of rho, for products with the Gram by FFT."""
    length = rho.shape[-1]
    two_sided = torch.cat([rho.transpose(1, 2).flip(-1)[..., :-1], rho], -1)
    return torch.fft.rfft(two_sided, 2 * length)


def _gram_times(gram: torch.Tensor, filters: torch.Tensor) -> torch.Tensor:
    """T c for the Gram T of the references' delays (`gram` from `_gram_spectrum`); [N, S, *V, L] -> [N, S, *V, L]."""
    length = filters.shape[-1]
    spec = torch.fft.rfft(filters, 2 * length)
    gram = gram.reshape(*gram.shape[:3], *([1] * (spec.ndim - 3)), gram.shape[-1])
    product = (gram * spec.unsqueeze(1)).sum(2)
    return torch.fft.irfft(product, 2 * length)[..., length - 1:2 * length - 1]


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
    """T^-1 r for r [..., V, L], with `inverse` [..., 2, F] from `_toeplitz_inverse`: four triangular products by FFT."""
    length = r.shape[-1]
    inverse = inverse.unsqueeze(-3)  # [..., 1, 2, F]
    transposed = torch.fft.irfft(inverse.conj() * torch.fft.rfft(r, 2 * length).unsqueeze(-2), 2 * length)
    products = torch.fft.rfft(transposed[..., :length], 2 * length) * inverse  # A(v) A(v)^T r for v = g, h
    return torch.fft.irfft(products.select(-2, 0) - products.select(-2, 1), 2 * length)[..., :length]


def _conjugate_gradients(gram, d, on_own, inverse, est_energy) -> tuple[torch.Tensor, torch.Tensor]:
    """Filters onto all references [N, S, V, L] and a bool [N]: the mixtures whose iteration converged.

    Conjugate gradients on the Gram, preconditioned by its block diagonal: each
    reference's own Toeplitz inverse. The steps needed then depend on how far
    the references' delay spaces are from orthogonal, not on how ill-conditioned
    each one is (about a digit per step on music and on the synthetic world).
    The preconditioned d is the own-reference solution, already at hand. The
    iteration stops when r.M^-1 r <= 1e-16 e.e for every estimate, which bounds
    the projection energy's error by that over the least eigenvalue of M^-1 T.
    """
    tiny = torch.finfo(d.dtype).tiny  # a zero estimate has rz = 0 from the start: steps of 0, not 0 / 0
    x, r, z = torch.zeros_like(d), d.clone(), on_own
    direction = z.clone()
    rz = torch.linalg.vecdot(r, z).sum(1)  # [N, V]
    goal = _CG_TOLERANCE * est_energy
    for _ in range(_CG_MAX_STEPS):
        running = rz > goal  # a converged estimate stops moving, so its result never depends on its batch
        if not running.any():
            break
        product = _gram_times(gram, direction)
        step = (running * rz / torch.linalg.vecdot(direction, product).sum(1).clamp_min(tiny))[:, None, :, None]
        x.addcmul_(step, direction)
        r.addcmul_(step, product, value=-1)
        z = _apply_toeplitz_inverse(inverse, r)
        rz_next = torch.linalg.vecdot(r, z).sum(1)
        direction = z.addcmul_((rz_next / rz.clamp_min(tiny))[:, None, :, None], direction)
        rz = rz_next
    return x, (rz <= goal).all(1) & x.isfinite().flatten(1).all(1)


def _projection_filters(rho: torch.Tensor, gram: torch.Tensor, d: torch.Tensor, est_energy: torch.Tensor):
    """Least-squares filters [N, S_ref, S_est, L]: onto all references, and onto each reference alone.

    Each reference alone is a symmetric Toeplitz system, solved by block
    Levinson with e_1 as one more right-hand side: its inverse's first column
    preconditions the joint system, solved by conjugate gradients. A mixture
    whose iteration does not converge is solved by block Levinson instead.
    """
    n, s, v, length = d.shape
    own = rho.diagonal(dim1=1, dim2=2).mT.reshape(n * s, 1, 1, length)
    unit = torch.zeros(n * s, 1, 1, length, dtype=d.dtype, device=d.device)
    unit[..., 0] = 1
    solved = _solve(own, torch.cat([d.reshape(n * s, 1, v, length), unit], 2)).view(n, s, v + 1, length)
    on_own = solved[:, :, :v]
    if s == 1:  # one reference: the same projection, as in mir_eval
        return on_own, on_own
    on_all, converged = _conjugate_gradients(gram, d, on_own, _toeplitz_inverse(solved[:, :, v]), est_energy)
    exact = ~converged
    if exact.any():
        on_all[exact] = _solve(rho[exact], d[exact])
    return on_all, on_own


def _quadratic_energies(gram, d, est_energy, on_all, on_own):
    """Energies from the normal equations alone, and a bound on their rounding error.

    With c the filter, the projection energy 2 c.d - c.Tc and the residual
    e.e - 2 c.d + c.Tc are exact to second order in the solver's error, like
    mir_eval's time-domain residuals. The interference (c_all - c_own).T(c_all - c_own)
    is not, so it gains 2 (c_all - c_own).(d - T c_all), the first-order term of
    c_all's error, which leaves it second order too. Residuals are differences of
    energies, so their rounding grows as they shrink: `bound` says how much.
    """
    s = d.shape[1]
    t_all = _gram_times(gram, on_all)  # [N, S, S_est, L]
    t_own = _gram_times(gram, on_own.unsqueeze(1) * torch.eye(s, dtype=d.dtype, device=d.device)[:, :, None, None])
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
    energies = dict(target=target, own_residual=est_energy.unsqueeze(1) - target, interference=interference,
                    projection=projection.unsqueeze(1), all_residual=(est_energy - projection).unsqueeze(1))
    terms_own = 2 * cross_own.abs().sum(-1) + quad_own.abs().sum(-1)
    terms_all = 2 * cross_all.abs().sum((1, 3)) + quad_all.abs().sum((1, 3))
    pairs = [(terms_own, target), (terms_all, projection),
             (est_energy.unsqueeze(1) + terms_own, energies["own_residual"]),
             (est_energy + terms_all, energies["all_residual"][:, 0]),
             ((diff.abs() * (t_all.unsqueeze(2).abs() + t_own.abs() + correction.abs())).sum((1, 4)),
              interference)]
    ratios = [torch.where(terms == 0, 0.0, terms / value.abs()).flatten(1).amax(1) for terms, value in pairs]
    return energies, torch.stack(ratios).amax(0)  # 0 where a value is exactly 0 from exactly 0 terms


def _spectral_energies(ref_spec, est_spec, on_all, on_own, n_fft):
    """Energies of the projections' spectra (Parseval): residuals are formed sample by sample, as in mir_eval."""
    proj_all = (torch.fft.rfft(on_all, n_fft) * ref_spec.unsqueeze(2)).sum(1).unsqueeze(1)  # [N, 1, S_est, F]
    proj_own = torch.fft.rfft(on_own, n_fft) * ref_spec.unsqueeze(2)  # [N, S_ref, S_est, F]
    est_spec = est_spec.unsqueeze(1)
    return dict(target=_energy(proj_own, n_fft), own_residual=_energy(est_spec - proj_own, n_fft),
                interference=_energy(proj_all - proj_own, n_fft), projection=_energy(proj_all, n_fft),
                all_residual=_energy(est_spec - proj_all, n_fft))


def _energy(spectrum: torch.Tensor, n_fft: int) -> torch.Tensor:
    """sum_t x[t]^2 from rfft(x, n_fft) (Parseval)."""
    total = 2 * torch.linalg.vector_norm(torch.view_as_real(spectrum), dim=(-2, -1)).square()
    edges = spectrum[..., 0].abs().square()
    if n_fft % 2 == 0:
        edges = edges + spectrum[..., -1].abs().square()
    return (total - edges) / n_fft


def _db(num: torch.Tensor, den: torch.Tensor) -> torch.Tensor:
    """10 log10(num / den), +inf when den is exactly 0 (mir_eval's _safe_db)."""
    return torch.where(den == 0, torch.inf, 10 * torch.log10(num / den))


def _correlation_block(length: int, samples: int) -> int:
    """FFT size for the blocked correlations: a power of two near 8 L, never past one block for the signal."""
    whole = 1 << (samples + length - 2).bit_length()
    return min(whole, 1 << (8 * length - 1).bit_length())


def _correlations(ref: torch.Tensor, est: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """rho[n, i, j, l] = sum_t s_i[t] s_j[t + l] and d[n, i, v, l] = sum_t s_i[t] e_v[t + l], l < L.

    Overlap-save: the references are cut into blocks of `hop` samples, each
    correlated with the window of `hop + L - 1` samples of every signal that
    starts with it, in an FFT of P = hop + L - 1 points, which wraps nothing.
    The block spectra are summed before one short inverse FFT, so only the
    forward transforms scale with the signal, in FFTs that fit the cache.
    """
    s, samples = ref.shape[1], ref.shape[-1]
    size = _correlation_block(length, samples)
    hop = size - length + 1
    spectra = None  # [N, S, S + V, F]
    for start in range(0, samples, hop):  # block by block: small transforms that stay in cache
        head = torch.fft.rfft(ref[..., start:start + hop], size).conj().unsqueeze(2)  # zero-padded, as is the last window
        window = torch.fft.rfft(torch.cat([ref[..., start:start + size], est[..., start:start + size]], 1), size)
        spectra = head * window.unsqueeze(1) if spectra is None else spectra.addcmul_(head, window.unsqueeze(1))
    corr = torch.fft.irfft(spectra, size)[..., :length]
    return corr[:, :, :s], corr[:, :, s:]


def _chunk_scores(ref: torch.Tensor, est: torch.Tensor, filter_length: int):
    """sdr, sir [N, S_ref, S_est] and sar [N, 1, S_est] for every reference/estimate pair."""
    rho, d = _correlations(ref, est, filter_length)
    est_energy = torch.linalg.vector_norm(est, dim=-1).square()
    gram = _gram_spectrum(rho)
    on_all, on_own = _projection_filters(rho, gram, d, est_energy)
    energies, bound = _quadratic_energies(gram, d, est_energy, on_all, on_own)
    rows = torch.nonzero(~(bound < _MAX_ROUNDING)).flatten()
    if len(rows):
        if ref.shape[1] > 1:  # spectra are first order in the filters' error: take the exact solve
            on_all[rows] = _solve(rho[rows], d[rows])
        n_fft = scipy.fft.next_fast_len(ref.shape[-1] + filter_length - 1, real=True)  # no wrap-around
        spectra = torch.fft.rfft(ref[rows], n_fft), torch.fft.rfft(est[rows], n_fft)
        exact = _spectral_energies(*spectra, on_all[rows], on_own[rows], n_fft)
        for key, value in exact.items():
            energies[key][rows] = value
    e = energies
    return (_db(e["target"], e["own_residual"]), _db(e["target"], e["interference"]),
            _db(e["projection"], e["all_residual"]))


def _best_permutation(sir: torch.Tensor) -> torch.Tensor:
    """[N, S] estimate index per reference maximising mean SIR; first maximum in itertools order, as mir_eval."""
    s = sir.shape[-1]
    perms = torch.tensor(list(itertools.permutations(range(s))), device=sir.device)  # [P, S]: estimate per reference
    mean_sir = sir[:, torch.arange(s, device=sir.device), perms].mean(-1)  # [N, P]
    best = np.argmax(mean_sir.cpu().numpy(), axis=1)
    return perms[torch.from_numpy(best).to(sir.device)]


def _score_rows(ref: torch.Tensor, est: torch.Tensor, filter_length: int, permutation: bool) -> torch.Tensor:
    """[4, N, S]: SDR, SIR, SAR of each reference and the index of the estimate scored against it."""
    n, s, _ = ref.shape
    sdr, sir, sar = _chunk_scores(ref, est, filter_length)
    chosen = _best_permutation(sir) if permutation else torch.arange(s, device=ref.device).expand(n, s)
    sdr, sir = sdr.gather(2, chosen[..., None])[..., 0], sir.gather(2, chosen[..., None])[..., 0]
    return torch.stack([sdr, sir, sar[:, 0].gather(1, chosen), chosen.to(sdr)]).cpu()


def _take(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x[rows], as a view when the rows are consecutive (the usual case): no copy of the waveforms."""
    first = int(rows[0])
    return x[first:first + len(rows)] if int(rows[-1]) - first + 1 == len(rows) else x[rows.to(x.device)]


def _bss_eval(ref: torch.Tensor, est: torch.Tensor, filter_length: int, permutation: bool) -> np.ndarray:
    """[4, B, S] as `_score_rows`; NaN for mixtures with a silent source, which are never solved."""
    b, s, t = ref.shape
    out = torch.full((4, b, s), torch.nan, dtype=torch.float64)
    valid = torch.nonzero(~_silent(ref, est)).flatten().cpu()
    n_fft = scipy.fft.next_fast_len(t + filter_length - 1, real=True)
    with _single_threaded_ops(ref.device) as workers:
        fits = max(1, _CHUNK_BYTES // (workers * 16 * n_fft * s * (s + 1)))  # spectra of the exact-energy path
        chunks = valid.split(max(1, min(fits, -(-len(valid) // workers))))
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            scores = pool.map(lambda rows: _score_rows(_take(ref, rows), _take(est, rows), filter_length, permutation),
                              chunks)
            for rows, score in zip(chunks, scores):
                out[:, rows] = score
    return out.numpy()


def bss_eval_sources(reference, estimate, filter_length: int = DEFAULT_FILTER_LENGTH, permutation: bool = False):
    """SDR, SIR, SAR in dB as float64 arrays [S] (for [S, T] input) or [B, S] (for [B, S, T]).

    mir_eval.separation.bss_eval_sources semantics with distortion filters of
    `filter_length` taps. Without `permutation`, estimate j is scored against
    reference j; with it, estimates are reassigned to maximise the mean SIR and
    the values are ordered by reference. A mixture with a silent source
    (sum|x| <= 1e-5) is skipped without solving: its row is NaN.
    """
    ref, est, single = _pair(reference, estimate)
    if int(filter_length) != filter_length or filter_length < 1:
        raise ValueError(f"filter_length must be a positive integer, got {filter_length!r}")
    scores = _bss_eval(ref, est, int(filter_length), permutation)[:3]
    return tuple(scores[:, 0] if single else scores)


def si_sdr(reference, estimate) -> np.ndarray:
    """Scale-invariant SDR in dB, float64 [S] or [B, S] (Le Roux et al., 2019).

    With s and e made zero-mean, the target is a*s with a = <e, s> / <s, s>;
    SI-SDR = 10 log10((|a s|^2 + eps) / (|a s - e|^2 + eps)) with eps the float64
    machine epsilon, so a perfect estimate scores a large finite value (as in
    torchmetrics) instead of infinity. Rescaling the estimate does not change
    it. Mixtures with a silent source (sum|x| <= 1e-5) are NaN.
    """
    ref, est, single = _pair(reference, estimate)
    silent = _silent(ref, est)
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ref.square().sum(-1, keepdim=True)
    target = scale * ref
    eps = torch.finfo(torch.float64).eps
    value = _db(target.square().sum(-1) + eps, (target - est).square().sum(-1) + eps)
    value[silent] = torch.nan
    result = value.cpu().numpy()
    return result[0] if single else result


class SeparationMetric(Metric):
    """BSS-Eval v3 SDR / SIR / SAR and SI-SDR of separated waveforms (`separate_audio`)."""

    name = "separation"
    tasks = frozenset({"separate_audio"})
    _ITEMS_PER_CALL = 32  # mixtures stacked per call, so long suites stay in bounded memory

    def cards(self) -> list[MetricCard]:
        common = (f" Distortion filters of {DEFAULT_FILTER_LENGTH} taps unless the suite sets filter_length. "
                  f"Aggregation: {AGGREGATION}. A mixture with a source of sum|x| <= {SILENCE_THRESHOLD:g} "
                  "(reference or estimate) is skipped and counted, never averaged.")
        bss = "Estimate projected on the delayed references: target = projection on its own reference, "
        return [
            MetricCard("SDR", bss + "SDR = 10 log10(|target|^2 / |estimate - target|^2) in dB." + common, True,
                       REFERENCE),
            MetricCard("SIR", bss + "interference = projection on all references - target; "
                       "SIR = 10 log10(|target|^2 / |interference|^2) in dB." + common, True, REFERENCE),
            MetricCard("SAR", bss + "artifacts = estimate - projection on all references; "
                       "SAR = 10 log10(|projection on all|^2 / |artifacts|^2) in dB." + common, True, REFERENCE),
            MetricCard("SI-SDR", "Zero-mean signals; target = (<e, s> / <s, s>) s; "
                       "SI-SDR = 10 log10(|target|^2 / |target - e|^2) in dB." + common, True,
                       "Le Roux et al., SDR - half-baked or well done? (ICASSP 2019)",
                       notes="With permutation search, an estimate is scored against the reference BSS-Eval gave it."),
        ]

    def compute(self, inputs: ScoringInputs, options: dict) -> list[MetricValue]:
        permutation = options.get("permutation", False)
        filter_length = options.get("filter_length", DEFAULT_FILTER_LENGTH)
        if not isinstance(permutation, bool):
            raise SuiteError(f"option 'permutation' must be true or false, got {permutation!r}")
        if isinstance(filter_length, bool) or not isinstance(filter_length, int) or filter_length < 1:
            raise SuiteError(f"option 'filter_length' must be a positive integer, got {filter_length!r}")
        pairs = inputs.waveforms()
        ids = list(inputs.item_ids)
        if len(pairs) != len(ids):
            raise DataError(f"separation: {len(pairs)} waveform pairs for {len(ids)} items")
        scores = np.full((4, len(ids)), np.nan)  # per item: mean SDR, SIR, SAR, SI-SDR over its sources
        silent = 0
        groups: dict[tuple, list[int]] = {}
        for k, (reference, estimate) in enumerate(pairs):
            if np.shape(reference) != np.shape(estimate) or np.ndim(reference) != 2:
                raise DataError(f"item {ids[k]}: reference {np.shape(reference)} and estimate "
                                f"{np.shape(estimate)} must both be [S, T] of the same shape")
            groups.setdefault(np.shape(reference), []).append(k)
        for members in groups.values():
            for start in range(0, len(members), self._ITEMS_PER_CALL):
                rows = members[start:start + self._ITEMS_PER_CALL]
                ref = torch.from_numpy(np.stack([pairs[k][0] for k in rows]).astype(np.float64))
                est = torch.from_numpy(np.stack([pairs[k][1] for k in rows]).astype(np.float64))
                silent += int(_silent(ref, est).sum())
                bss = _bss_eval(ref, est, filter_length, permutation)
                assigned = np.nan_to_num(bss[3]).astype(np.int64)  # silent rows stay NaN through si_sdr
                matched = torch.gather(est, 1, torch.from_numpy(assigned)[..., None].expand(est.shape))
                scores[:3, rows] = bss[:3].mean(-1)
                scores[3, rows] = si_sdr(ref, matched).mean(-1)
        skipped = int(np.isnan(scores[0]).sum())
        details = {"filter_length": filter_length, "permutation": permutation,
                   "silence_threshold": SILENCE_THRESHOLD, "aggregation": AGGREGATION, "skipped_silent": silent}
        names = ("SDR[bss-v3]", "SIR[bss-v3]", "SAR[bss-v3]", "SI-SDR[waveform]")
        return [
            MetricValue(name=name, value=float(np.nanmean(per_item)) if skipped < len(ids) else float("nan"),
                        higher_is_better=True, backbone=name[name.index("[") + 1:-1], per_item=per_item,
                        item_ids=ids, n=len(ids) - skipped, skipped=skipped, details=dict(details))
            for name, per_item in zip(names, scores)
        ]
