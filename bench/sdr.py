"""Time avbench's BSS-Eval v3 against mir_eval on the MUSIC protocol shape.

Usage: python bench/sdr.py [--mixtures 200] [--rounds 8] [--seed 0]

Synthetic mixtures of 2 sources x 65,280 samples at 11,025 Hz: harmonic
"instruments" over a noise floor; each estimate is its source, filtered, with
leakage from the other source and added noise. Both implementations run in
the same process, in interleaved rounds (the side that goes first alternates)
so that a change of machine load hits both alike. Each round times mir_eval
on its share of the mixtures (all of them over the rounds) and avbench on
all of them, a few seconds each, and takes the ratio of the times per
mixture. Each timed section starts after a short pause: thread pools (numpy's
BLAS after mir_eval, torch's after avbench) keep spinning for a while after
their last call, and would otherwise be charged to the other side.

Prints the machine load at start and end, each round's wall-clock and CPU
speed-ups, their median and range, and the largest |difference| in dB over
SDR, SIR and SAR (avbench must give the same bits in every round).
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from _common import machine_note

from avbench.metrics.bss_eval import bss_eval_sources

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
    parser.add_argument("--mixtures", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # mir_eval.separation is deprecated in 0.8
    import mir_eval.separation

    print(machine_note(), flush=True)
    refs, ests = synthetic_mixtures(args.mixtures, args.seed)
    bss_eval_sources(refs[:1], ests[:1])  # warm-up: thread pools, FFT plans
    mir_eval.separation.bss_eval_sources(refs[0], ests[0], compute_permutation=False)

    def time_mir_eval(rows: np.ndarray) -> tuple[float, float, np.ndarray]:
        scores = [mir_eval.separation.bss_eval_sources(refs[m], ests[m], compute_permutation=False)[:3] for m in rows]
        return *_elapsed(), np.array(scores)

    def time_avbench() -> tuple[float, float, np.ndarray]:
        scores = bss_eval_sources(refs, ests)
        return *_elapsed(), np.stack([scores.sdr, scores.sir, scores.sar], 1)

    theirs, ours, ratios = [], None, []
    for k, rows in enumerate(np.array_split(np.arange(args.mixtures), args.rounds)):
        timed = {}
        for side in ("mir_eval", "avbench") if k % 2 == 0 else ("avbench", "mir_eval"):
            time.sleep(SETTLE_SECONDS)
            _elapsed()
            timed[side] = time_mir_eval(rows) if side == "mir_eval" else time_avbench()
        theirs.append(timed["mir_eval"][2])
        if ours is not None and not np.array_equal(ours, timed["avbench"][2], equal_nan=True):
            raise SystemExit(f"round {k}: avbench's scores differ from round 0's")
        ours = timed["avbench"][2]
        per_mixture = {
            side: np.array(timed[side][:2]) / count
            for side, count in (("mir_eval", len(rows)), ("avbench", args.mixtures))
        }
        ratios.append(per_mixture["mir_eval"] / per_mixture["avbench"])
        print(
            f"round {k}: mir_eval {len(rows)} mixtures {timed['mir_eval'][0]:6.2f} s wall, "
            f"{per_mixture['mir_eval'][0] * 1e3:6.1f} ms/mixture; avbench {args.mixtures} mixtures "
            f"{timed['avbench'][0]:6.2f} s wall, {per_mixture['avbench'][0] * 1e3:5.1f} ms/mixture; "
            f"speed-up wall {ratios[-1][0]:5.1f}x, cpu {ratios[-1][1]:5.1f}x",
            flush=True,
        )
    delta = np.abs(ours - np.concatenate(theirs))  # [M, 3, S]
    wall, cpu = np.array(ratios).T

    print(
        f"{args.mixtures} mixtures x {SOURCES} sources x {SAMPLES} samples at {SAMPLE_RATE} Hz, filter length 512, "
        f"{args.rounds} rounds"
    )
    print(
        f"speed-up over {args.rounds} rounds: wall median {np.median(wall):.1f}x (range {wall.min():.1f}-"
        f"{wall.max():.1f}x), cpu median {np.median(cpu):.1f}x (range {cpu.min():.1f}-{cpu.max():.1f}x)"
    )
    print(
        f"max |delta dB|: SDR {delta[:, 0].max():.2e}, SIR {delta[:, 1].max():.2e}, SAR {delta[:, 2].max():.2e}, "
        f"all {delta.max():.2e}"
    )
    scores = np.concatenate(theirs)
    print(
        "score ranges (dB): "
        + ", ".join(
            f"{name} {scores[:, i].min():.1f}..{scores[:, i].max():.1f}" for i, name in enumerate(("SDR", "SIR", "SAR"))
        )
    )
    print(machine_note())


_clock = [0.0, 0.0]


def _elapsed() -> tuple[float, float]:
    """Wall and CPU seconds since the previous call."""
    now = [time.perf_counter(), time.process_time()]
    wall, cpu = now[0] - _clock[0], now[1] - _clock[1]
    _clock[:] = now
    return wall, cpu


if __name__ == "__main__":
    main()
