"""Scale-invariant SDR (Le Roux et al., SDR - half-baked or well done?, ICASSP 2019)."""

from __future__ import annotations

import numpy as np
import torch

from ._signals import db, pair, silent


def si_sdr(reference, estimate) -> np.ndarray:
    """SI-SDR in dB of estimates [S, T] or [B, S, T] against references of that shape: float64 [S] or [B, S].

    With s and e made zero-mean, the target is a*s with a = <e, s> / <s, s>;
    SI-SDR = 10 log10((|a s|^2 + eps) / (|a s - e|^2 + eps)) with eps the float64
    machine epsilon, so a perfect estimate scores a large finite value (as in
    torchmetrics) instead of infinity. Rescaling the estimate does not change
    it. Mixtures with a silent source (sum|x| <= 1e-5) are NaN.

    Precision: one projection in float64, exact to rounding (~1e-13 dB below 100 dB).
    """
    ref, est, single = pair(reference, estimate)
    quiet = silent(ref, est)
    ref = ref - ref.mean(-1, keepdim=True)
    est = est - est.mean(-1, keepdim=True)
    scale = (est * ref).sum(-1, keepdim=True) / ref.square().sum(-1, keepdim=True)
    target = scale * ref
    value = db(target.square().sum(-1), (target - est).square().sum(-1))
    value[quiet] = torch.nan
    result = value.cpu().numpy()
    return result[0] if single else result
