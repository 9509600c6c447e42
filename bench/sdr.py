"""Time avbench's BSS-Eval v3 against mir_eval on the MUSIC protocol shape.

Usage: python bench/sdr.py [--mixtures 50] [--rounds 5] [--seed 0]

50 synthetic mixtures of 2 sources x 65,280 samples at 11,025 Hz: harmonic
"instruments" over a noise floor; each estimate is its source, filtered, with
leakage from the other source and added noise. Both implementations score the
same mixtures in the same process, in interleaved rounds so that a change of
machine load hits both alike. Each timed section starts after a short pause:
thread pools (numpy's BLAS after mir_eval, torch's after avbench) keep spinning
for a while after their last call, and would otherwise be charged to the other
side. Prints wall-clock and CPU-time speed-ups and the largest |difference| in
dB over SDR, SIR and SAR.
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from avbench.metrics.separation import bss_eval_sources

SAMPLE_RATE = 11025
SAMPLES = 65280
SOURCES = 2
SETTLE_SECONDS = 0.3  # longer than BLAS and OpenMP threads spin after their last call


def synthetic_mixtures(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """references, estimates: float64 [count, 2, 65280]."""
    rng = np.random.default_rng(seed)
    t = np.arange(SAMPLES) / SAMPLE_RATE
    refs = np.empty((count, SOURCES, SAMPLES))
    for m in range(count):
        for s in range(SOURCES):
            f0 = rng.uniform(80, 600)
            vibrato = 1 + 0.01 * np.sin(2 * np.pi * rng.uniform(3, 7) * t)
            phase = 2 * np.pi * f0 * np.cumsum(vibrato) / SAMPLE_RATE
            partials = sum(rng.uniform(0.2, 1) / h * np.sin(h * phase) for h in range(1, 8) if h * f0 < SAMPLE_RATE / 2)
            envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.5, 2) * t) ** 2
            refs[m, s] = 0.3 * envelope * partials + 0.01 * rng.standard_normal(SAMPLES)
    leak = rng.uniform(0.05, 0.3, (count, SOURCES, 1))
    ests = refs + leak * refs[:, ::-1] + rng.uniform(0.005, 0.05, (count, SOURCES, 1)) * rng.standard_normal(refs.shape)
    taps = np.array([1.0, -0.2, 0.05])
    ests = np.apply_along_axis(lambda x: np.convolve(x, taps)[:SAMPLES], -1, ests)
    return refs, ests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixtures", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # mir_eval.separation is deprecated in 0.8
    import mir_eval.separation

    refs, ests = synthetic_mixtures(args.mixtures, args.seed)
    bss_eval_sources(refs[:1], ests[:1])  # warm-up: thread pools, FFT plans
    mir_eval.separation.bss_eval_sources(refs[0], ests[0], compute_permutation=False)

    wall = {"mir_eval": 0.0, "avbench": 0.0}
    cpu = dict(wall)
    ours, theirs = [], []
    for rows in np.array_split(np.arange(args.mixtures), args.rounds):
        time.sleep(SETTLE_SECONDS)
        w, c = time.perf_counter(), time.process_time()
        for m in rows:
            scores = mir_eval.separation.bss_eval_sources(refs[m], ests[m], compute_permutation=False)
            theirs.append(np.array(scores[:3]))
        wall["mir_eval"] += time.perf_counter() - w
        cpu["mir_eval"] += time.process_time() - c
        time.sleep(SETTLE_SECONDS)
        w, c = time.perf_counter(), time.process_time()
        ours.append(np.stack(bss_eval_sources(refs[rows], ests[rows]), 1))
        wall["avbench"] += time.perf_counter() - w
        cpu["avbench"] += time.process_time() - c
    delta = np.abs(np.concatenate(ours) - np.stack(theirs))  # [M, 3, S]

    n = args.mixtures
    print(f"{n} mixtures x {SOURCES} sources x {SAMPLES} samples at {SAMPLE_RATE} Hz, filter length 512, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in ("mir_eval", "avbench"):
        print(f"{name:9s} wall {wall[name]:8.2f} s ({wall[name] / n * 1e3:7.1f} ms/mixture)   "
              f"cpu {cpu[name]:8.2f} s ({cpu[name] / n * 1e3:7.1f} ms/mixture)")
    print(f"speed-up: wall {wall['mir_eval'] / wall['avbench']:.1f}x, cpu {cpu['mir_eval'] / cpu['avbench']:.1f}x")
    print(f"max |delta dB|: SDR {delta[:, 0].max():.2e}, SIR {delta[:, 1].max():.2e}, SAR {delta[:, 2].max():.2e}, "
          f"all {delta.max():.2e}")
    print(f"score ranges (dB): SDR {np.stack(theirs)[:, 0].min():.1f}..{np.stack(theirs)[:, 0].max():.1f}, "
          f"SIR {np.stack(theirs)[:, 1].min():.1f}..{np.stack(theirs)[:, 1].max():.1f}, "
          f"SAR {np.stack(theirs)[:, 2].min():.1f}..{np.stack(theirs)[:, 2].max():.1f}")


if __name__ == "__main__":
    main()
