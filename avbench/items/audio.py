"""Audio in and out: load, resample, tile, mix, write.

Every suite hands models mono float32 in [-1, 1] at the suite's rate and of
the suite's exact length. Short clips are tiled (as Sound2Scene and DAVIS
do), never zero-padded, and nothing is cut beyond the requested window.
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from ..cache import atomic_write
from ..errors import DataError

SILENCE_L1 = 1e-5  # PROTOCOLS: a waveform with sum|x| <= 1e-5 is silent


def _samples(seconds: float, rate: int) -> int:
    return int(round(seconds * rate))


def tile_to(wave: np.ndarray, length: int) -> np.ndarray:
    """Repeat `wave` end to end, then cut to exactly `length` samples."""
    if wave.shape[0] >= length:
        return wave[:length]
    return np.tile(wave, math.ceil(length / wave.shape[0]))[:length]


def load_audio(
    path: str | Path,
    sample_rate: int,
    start: float = 0.0,
    seconds: float | None = None,
    expect_rate: int | None = None,
) -> np.ndarray:
    """Mono float32 [T] at `sample_rate`, from `start` for `seconds` (tiled if short).

    `expect_rate` demands that the file already be at that rate (files made by
    `avbench data prepare` are); otherwise a different rate is resampled with
    soxr at high quality. Channels are averaged.
    """
    try:
        info = sf.info(str(path))
        rate = int(info.samplerate)
        if expect_rate is not None and rate != expect_rate:
            raise DataError(
                f"{path}: sample rate is {rate} Hz, expected {expect_rate} Hz (prepare the data for this suite's rate)"
            )
        first = _samples(start, rate)
        stop = None if seconds is None else first + math.ceil(seconds * rate)
        data, _ = sf.read(str(path), start=first, stop=stop, dtype="float32", always_2d=True)
    except DataError:
        raise
    except (sf.LibsndfileError, RuntimeError, OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read audio ({exc})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: no audio from {start} s on (the file holds {info.frames / rate:.3f} s)")
    wave = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.all(np.isfinite(wave)):
        raise DataError(f"{path}: audio contains NaN or infinite samples")
    if rate != sample_rate:
        wave = soxr.resample(wave, rate, sample_rate, quality="HQ")
    if seconds is not None:
        wave = tile_to(wave, _samples(seconds, sample_rate))
    return np.clip(wave, -1.0, 1.0).astype(np.float32, copy=False)


def mix_sources(waves: list[np.ndarray], gains_db: list[float], rule: str) -> tuple[np.ndarray, np.ndarray]:
    """Mix equal-length sources; returns (mixture [T], scaled sources [S, T]).

    The scaled sources are exactly what the mixture is made of (mixture =
    their mean, or their sum for "sum"), so they are the separation references.
      mean            gains applied, then the mean (DAVIS's test mixtures)
      equal-rms-mean  each non-silent source scaled to the mean RMS of the
                      non-silent sources, then the mean; silent sources stay silent
      sum             gains applied, then the sum
    If the mixture or a source would leave [-1, 1], all of them are scaled down by
    one common factor, which keeps their relative levels.
    """
    if not waves:
        raise ValueError("mix_sources needs at least one source")
    if len(gains_db) != len(waves):
        raise ValueError(f"{len(waves)} sources but {len(gains_db)} gains")
    lengths = {w.shape[0] for w in waves}
    if len(lengths) != 1 or any(w.ndim != 1 for w in waves):
        raise ValueError(f"sources must be 1-D and of one length, got shapes {[w.shape for w in waves]}")
    gains = 10.0 ** (np.asarray(gains_db, dtype=np.float64) / 20.0)
    sources = np.stack([w.astype(np.float64) for w in waves]) * gains[:, None]
    if rule == "equal-rms-mean":
        sources = _equal_rms(sources)
    elif rule not in ("mean", "sum"):
        raise ValueError(f"unknown mix rule {rule!r}")
    combine = np.sum if rule == "sum" else np.mean
    peak = max(np.abs(sources).max(), np.abs(combine(sources, axis=0)).max())
    if peak > 1.0:
        sources = sources / peak
    sources32 = sources.astype(np.float32)
    mixture = combine(sources32.astype(np.float64), axis=0).astype(np.float32)
    return mixture, sources32


def _equal_rms(sources: np.ndarray) -> np.ndarray:
    loud = np.abs(sources).sum(axis=1) > SILENCE_L1
    if not loud.any():
        return sources
    rms = np.sqrt(np.mean(sources**2, axis=1))
    target = rms[loud].mean()
    scale = np.where(loud, target / np.where(loud, rms, 1.0), 1.0)
    return sources * scale[:, None]


def write_wav(path: str | Path, audio: np.ndarray, sample_rate: int) -> None:
    """Write float32 WAV atomically: a reader never sees a half-written file."""
    buffer = io.BytesIO()
    sf.write(buffer, np.asarray(audio, dtype=np.float32), sample_rate, subtype="FLOAT", format="WAV")
    atomic_write(Path(path), buffer.getvalue())
