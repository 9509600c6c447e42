"""Separation measures in torch float64: BSS-Eval v3 sources (SDR, SIR, SAR) and SI-SDR.

One public function per quantity:

- `bss_eval_sources`: mir_eval.separation.bss_eval_sources (v3) semantics, a
  `SourceScores` of SDR, SIR, SAR and the permutation as integers;
- `si_sdr`: scale-invariant SDR;
- `silent_mixtures`: the DAVIS silence rule both apply (NaN, never solved).

How BSS-Eval is computed: each estimate is projected by least squares onto the
delays 0..L-1 of its own reference, and onto those of all references; the
projections split it into target, interference and artifacts. mir_eval solves
each normal equation densely, in O((S L)^3), once per estimate. Here a
mixture's correlations come once from short overlap-save FFTs; each
reference's own Toeplitz system is solved by persymmetric block Levinson, and
the joint system by conjugate gradients preconditioned with those own
systems' inverses (Gohberg-Semencul, by FFT).

Precision budget, against mir_eval 0.8 (tests/test_separation.py holds it):

- within 1e-6 dB wherever mir_eval's value is below 100 dB (noise, music-like
  and the synthetic world's tonal sources); about 1e-11 dB on bench/sdr.py's
  music-shaped mixtures. Above ~100 dB the residual is below float64 rounding
  of the signal: both sides are float64 noise there.
- Energies come from the normal equations, exact to second order in the
  solver's error. Where a residual is so small that their rounding could pass
  ~1e-8 dB, the mixture's joint system is solved exactly and its energies come
  from the projections' spectra, residual sample by residual sample, as
  mir_eval forms them in time.
- Block Levinson takes over the joint system when conjugate gradients do not
  converge in 64 steps (the references' delay spaces nearly coincide); dense
  LU, as in mir_eval, takes over from Levinson where a Gram is not numerically
  positive definite.
- A mixture scores the same bits alone as in any batch.

The torch thread settings of the caller are restored on every path: the
solver runs single-threaded torch ops, one worker thread per core.
"""

from ._signals import SILENCE_THRESHOLD
from .scale_invariant import si_sdr
from .sources import DEFAULT_FILTER_LENGTH, SourceScores, bss_eval_sources, silent_mixtures

__all__ = [
    "DEFAULT_FILTER_LENGTH",
    "SILENCE_THRESHOLD",
    "SourceScores",
    "bss_eval_sources",
    "si_sdr",
    "silent_mixtures",
]
