"""BSS-Eval v3 source measures (SDR, SIR, SAR), batched in torch float64, with optional permutation search."""

from __future__ import annotations

import concurrent.futures
import contextlib
import itertools
from dataclasses import dataclass

import numpy as np
import scipy.fft
import torch

from ._correlations import correlations
from ._energies import quadratic_energies, spectral_energies
from ._projections import gram_spectrum, projection_filters
from ._signals import db, pair, silent
from ._toeplitz import solve

DEFAULT_FILTER_LENGTH = 512
_CHUNK_BYTES = 256 * 2**20  # bound on the exact-energy spectra of the chunks scored at once (one per worker)


@dataclass(frozen=True)
class SourceScores:
    """BSS-Eval v3 source measures, ordered by reference: [S] for one mixture [S, T], [B, S] for a batch.

    sdr, sir, sar are float64 dB, NaN for a mixture with a silent source.
    `permutation` (int64) is the index of the estimate scored against each
    reference: the identity without permutation search, and for silent mixtures.
    """

    sdr: np.ndarray
    sir: np.ndarray
    sar: np.ndarray
    permutation: np.ndarray


@dataclass(frozen=True)
class _Settings:
    filter_length: int
    permutation: bool
    max_cg_steps: int
    cg_tolerance: float
    max_rounding: float


def bss_eval_sources(
    reference,
    estimate,
    filter_length: int = DEFAULT_FILTER_LENGTH,
    permutation: bool = False,
    *,
    max_cg_steps: int = 64,
    cg_tolerance: float = 1e-16,
    max_rounding: float = 1e4,
) -> SourceScores:
    """SDR, SIR, SAR of estimates [S, T] or [B, S, T] (numpy or torch, any device) against references of that shape.

    mir_eval.separation.bss_eval_sources semantics with distortion filters of
    `filter_length` taps. Without `permutation`, estimate j is scored against
    reference j; with it, estimates are reassigned to maximise the mean SIR
    (first maximum in itertools order, as mir_eval). A mixture with a silent
    source (sum|x| <= 1e-5) is skipped without solving. A mixture scores the
    same bits alone as in any batch.

    Precision (agreement with mir_eval 0.8): within 1e-6 dB where mir_eval's
    value is below 100 dB; on the bench's music-shaped mixtures about 1e-11 dB.
    Above ~100 dB the residual is below float64 rounding of the signal, and
    both sides return noise; a residual of exactly 0 gives a large finite value
    (energies are eps-bounded, as in SI-SDR) where mir_eval gives +inf. The defaults of the keywords below keep that
    budget; they exist so the hand-overs can be forced and checked:

    - max_cg_steps: conjugate-gradient steps on the joint system (about 14 on
      music) before the mixture is handed to exact block Levinson; with 0 every
      joint system is solved by block Levinson.
    - cg_tolerance: the iteration stops at r.M^-1 r <= cg_tolerance e.e; the
      energies' error is second order in it, far below float64 rounding at 1e-16.
    - max_rounding: where an energy's terms exceed it by more than this factor
      (its rounding ~1e-8 dB at 1e4), the energies of that mixture come from the
      projections' spectra, residual sample by residual sample as in mir_eval,
      after an exact joint solve; 0 takes that path everywhere, inf never.
    """
    ref, est, single = pair(reference, estimate)
    if int(filter_length) != filter_length or filter_length < 1:
        raise ValueError(f"filter_length must be a positive integer, got {filter_length!r}")
    settings = _Settings(int(filter_length), permutation, max_cg_steps, cg_tolerance, max_rounding)
    scores, chosen = _bss_eval(ref, est, settings)
    if single:
        scores, chosen = scores[:, 0], chosen[0]
    return SourceScores(*scores, permutation=chosen)


@contextlib.contextmanager
def _single_threaded_ops(device: torch.device):
    """Yield how many worker threads to run, each issuing single-threaded torch ops; restore the caller's threads.

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


def _bss_eval(ref: torch.Tensor, est: torch.Tensor, settings: _Settings) -> tuple[np.ndarray, np.ndarray]:
    """Scores [3, B, S] (NaN for mixtures with a silent source, which are never solved) and permutations [B, S]."""
    b, s, t = ref.shape
    scores = torch.full((3, b, s), torch.nan, dtype=torch.float64)
    chosen = torch.arange(s).repeat(b, 1)
    valid = torch.nonzero(~silent(ref, est)).flatten().cpu()
    n_fft = scipy.fft.next_fast_len(t + settings.filter_length - 1, real=True)
    with _single_threaded_ops(ref.device) as workers:
        fits = max(1, _CHUNK_BYTES // (workers * 16 * n_fft * s * (s + 1)))  # spectra of the exact-energy path
        chunks = valid.split(max(1, min(fits, -(-len(valid) // workers)))) if len(valid) else ()
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            results = pool.map(lambda rows: _score_rows(_take(ref, rows), _take(est, rows), settings), chunks)
            for rows, (chunk_scores, chunk_chosen) in zip(chunks, results, strict=True):
                scores[:, rows], chosen[rows] = chunk_scores, chunk_chosen
    return scores.numpy(), chosen.numpy()


def _take(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """x[rows], as a view when the rows are consecutive (the usual case): no copy of the waveforms."""
    first = int(rows[0])
    return x[first : first + len(rows)] if int(rows[-1]) - first + 1 == len(rows) else x[rows.to(x.device)]


def _score_rows(ref: torch.Tensor, est: torch.Tensor, settings: _Settings) -> tuple[torch.Tensor, torch.Tensor]:
    """SDR, SIR, SAR [3, N, S] of each reference, and the index [N, S] of the estimate scored against it."""
    n, s, _ = ref.shape
    sdr, sir, sar = _pair_scores(ref, est, settings)
    chosen = _best_permutation(sir) if settings.permutation else torch.arange(s, device=ref.device).expand(n, s)
    sdr, sir = sdr.gather(2, chosen[..., None])[..., 0], sir.gather(2, chosen[..., None])[..., 0]
    return torch.stack([sdr, sir, sar[:, 0].gather(1, chosen)]).cpu(), chosen.cpu()


def _pair_scores(ref: torch.Tensor, est: torch.Tensor, settings: _Settings):
    """sdr, sir [N, S_ref, S_est] and sar [N, 1, S_est] for every reference/estimate pair."""
    filter_length = settings.filter_length
    rho, d = correlations(ref, est, filter_length)
    est_energy = torch.linalg.vector_norm(est, dim=-1).square()
    gram = gram_spectrum(rho)
    on_all, on_own = projection_filters(rho, gram, d, est_energy, settings.max_cg_steps, settings.cg_tolerance)
    energies, bound = quadratic_energies(gram, d, est_energy, on_all, on_own)
    rows = torch.nonzero(~(bound < settings.max_rounding)).flatten()
    if len(rows):
        if ref.shape[1] > 1:  # spectra are first order in the filters' error: take the exact solve
            on_all[rows] = solve(rho[rows], d[rows])
        n_fft = scipy.fft.next_fast_len(ref.shape[-1] + filter_length - 1, real=True)  # no wrap-around
        spectra = torch.fft.rfft(ref[rows], n_fft), torch.fft.rfft(est[rows], n_fft)
        exact = spectral_energies(*spectra, on_all[rows], on_own[rows], n_fft)
        for key, value in exact.items():
            energies[key][rows] = value
    e = energies
    return (
        db(e["target"], e["own_residual"]),
        db(e["target"], e["interference"]),
        db(e["projection"], e["all_residual"]),
    )


def _best_permutation(sir: torch.Tensor) -> torch.Tensor:
    """[N, S] estimate index per reference maximising mean SIR; first maximum in itertools order, as mir_eval."""
    s = sir.shape[-1]
    perms = torch.tensor(list(itertools.permutations(range(s))), device=sir.device)  # [P, S]: estimate per reference
    mean_sir = sir[:, torch.arange(s, device=sir.device), perms].mean(-1)  # [N, P]
    best = np.argmax(mean_sir.cpu().numpy(), axis=1)
    return perms[torch.from_numpy(best).to(sir.device)]


def silent_mixtures(reference, estimate) -> np.ndarray:
    """bool [B] (or a scalar for [S, T] input): the mixture has a source with sum|x| <= 1e-5, so it is not scored."""
    ref, est, single = pair(reference, estimate)
    mask = silent(ref, est).cpu().numpy()
    return mask[0] if single else mask
