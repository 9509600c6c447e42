"""The world's parametric sounds: one generator per class.

Each generator draws its parameters from the clip's own random generator, so
clips of a class vary, while the class keeps a signature of its own: where its
energy sits in frequency (harmonic lines, noise bands) and how it moves in time
(glides, strikes, rhythm, modulation).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

Synth = Callable[[np.random.Generator, int, int], np.ndarray]


def _fast_size(n: int) -> int:
    """The next power of two: FFT lengths with large prime factors are slow."""
    return 1 << (int(n) - 1).bit_length()


def _band_noise(rng: np.random.Generator, n: int, sr: int, centre: float, octaves: float) -> np.ndarray:
    """White noise shaped by a Gaussian band on a log-frequency axis, unit RMS."""
    size = _fast_size(n)
    bins = size // 2 + 1
    spectrum = rng.standard_normal(bins, dtype=np.float32) + 1j * rng.standard_normal(bins, dtype=np.float32)
    distance = np.log2(np.maximum(np.fft.rfftfreq(size, 1.0 / sr).astype(np.float32), 1.0) / centre) / (octaves / 2.0)
    spectrum *= np.exp(-0.5 * distance**2)
    out = np.fft.irfft(spectrum, size)[:n]
    return out / (np.sqrt(np.mean(out**2)) + 1e-12)


def _decays(n: int, sr: int, onsets: np.ndarray, decay_s: float, weights: np.ndarray) -> np.ndarray:
    """An envelope of exponential decays that start at `onsets` (seconds)."""
    env = np.zeros(n)
    kernel = np.exp(-np.arange(int(6 * decay_s * sr) + 1) / (decay_s * sr))
    for onset, weight in zip(onsets, weights, strict=True):
        _place(env, int(onset * sr), weight * kernel)
    return env


def _sin(phase: np.ndarray) -> np.ndarray:
    """Sine in float32: ten times faster than float64 and plenty for these sounds."""
    return np.sin(np.asarray(phase, dtype=np.float32))


def _tone(freq: np.ndarray | float, n: int, sr: int, phase: float = 0.0) -> np.ndarray:
    """A sine whose frequency may vary per sample."""
    if np.ndim(freq) == 0:
        return _sin(phase + 2 * np.pi * float(freq) * np.arange(n) / sr)
    return _sin(phase + 2 * np.pi * np.cumsum(freq) / sr)


def _place(out: np.ndarray, start: int, segment: np.ndarray) -> None:
    end = min(out.size, start + segment.size)
    if end > start:
        out[start:end] += segment[: end - start]


def dog_barking(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Short harmonic barks with a falling pitch and a noisy rasp."""
    out = np.zeros(n)
    count = int(rng.integers(2, 5))
    slots = np.sort(rng.uniform(0.0, 0.85, count)) * n / sr + np.arange(count) * 0.05
    f0 = rng.uniform(380, 620)
    for onset in slots:
        length = int(rng.uniform(0.12, 0.22) * sr)
        t = np.arange(length) / sr
        progress = t / t[-1]
        freq = f0 * (1.0 + 0.25 * _sin(np.pi * progress) - 0.35 * progress)
        env = np.abs(_sin(np.pi * progress)) ** 0.6
        voice = sum(_tone(freq * k, length, sr) / k for k in range(1, 7))
        rasp = 0.3 * _band_noise(rng, length, sr, 3.0 * f0, 1.0)
        _place(out, int(onset * sr), env * (voice + rasp))
    return out


def church_bell_ringing(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Inharmonic bell partials, struck every ~0.7 s, decaying slowly."""
    out = np.zeros(n)
    f0 = rng.uniform(280, 520)
    ratios = np.array([0.5, 1.0, 1.19, 1.5, 2.0, 2.52, 3.0, 4.16])
    amps = np.array([0.6, 1.0, 0.8, 0.5, 0.6, 0.35, 0.25, 0.15]) * rng.uniform(0.8, 1.2, ratios.size)
    t = np.arange(n, dtype=np.float32) / sr
    strike = sum(
        a * np.exp(-t * (0.8 + 0.9 * r)) * _sin(2 * np.pi * f0 * r * t) for r, a in zip(ratios, amps, strict=True)
    )
    for onset in np.arange(rng.uniform(0.0, 0.25), n / sr, rng.uniform(0.6, 0.9)):
        _place(out, int(onset * sr), strike)
    return out


def siren_wailing(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A slowly sweeping tone with a few harmonics."""
    t = np.arange(n, dtype=np.float32) / sr
    centre, depth, rate = rng.uniform(850, 1150), rng.uniform(280, 420), rng.uniform(0.8, 1.6)
    freq = centre + depth * _sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi))
    return sum(a * _tone(freq * k, n, sr) for k, a in ((1, 1.0), (2, 0.35), (3, 0.15))) + 0.02 * rng.standard_normal(n)


def rain_falling(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Steady high hiss plus many tiny droplet ticks."""
    hiss = _band_noise(rng, n, sr, rng.uniform(4500, 5500), 2.5)
    onsets = rng.uniform(0.0, n / sr, int(rng.integers(80, 200)))
    ticks = _decays(n, sr, onsets, 0.002, rng.uniform(0.3, 1.0, onsets.size)) * _band_noise(rng, n, sr, 6000, 1.5)
    return hiss + 1.5 * ticks


def bird_chirping(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Quick high rising chirps in small groups."""
    out = np.zeros(n)
    base = rng.uniform(2600, 3600)
    for onset in np.sort(rng.uniform(0.0, n / sr - 0.1, int(rng.integers(4, 9)))):
        length = int(rng.uniform(0.04, 0.09) * sr)
        progress = np.linspace(0.0, 1.0, length)
        freq = base * (1.0 + rng.uniform(0.4, 0.8) * progress**1.5)
        env = _sin(np.pi * progress) ** 2
        _place(out, int(onset * sr), env * (_tone(freq, length, sr) + 0.2 * _tone(2 * freq, length, sr)))
    return out


def car_engine_idling(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """A low, many-harmonic rumble pulsing at its firing rate."""
    t = np.arange(n, dtype=np.float32) / sr
    f0 = rng.uniform(28, 45) * (1.0 + 0.02 * _sin(2 * np.pi * rng.uniform(0.3, 1.0) * t))
    cycles = np.cumsum(f0) / sr
    rumble = sum(_sin(2 * np.pi * k * cycles + rng.uniform(0, 2 * np.pi)) / k**0.7 for k in range(1, 11))
    pulse = 0.6 + 0.4 * _sin(np.pi * cycles)
    return pulse * rumble / 3.0 + 0.3 * _band_noise(rng, n, sr, rng.uniform(150, 250), 1.5)


def people_clapping(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Irregular sharp noise bursts centred around 1-2.5 kHz."""
    onsets = rng.uniform(0.0, n / sr, int(rng.integers(12, 30)))
    env = _decays(n, sr, onsets, rng.uniform(0.008, 0.018), rng.uniform(0.5, 1.0, onsets.size))
    return env * _band_noise(rng, n, sr, rng.uniform(1200, 2200), 1.3)


def phone_ringing(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Two steady tones trilled on and off in a ring pattern."""
    t = np.arange(n, dtype=np.float32) / sr
    f1 = rng.uniform(1700, 2100)
    tones = _tone(f1, n, sr) + _tone(f1 * rng.uniform(1.12, 1.22), n, sr)
    trill = (_sin(2 * np.pi * rng.uniform(14, 22) * t) > 0).astype(float)
    on, off = rng.uniform(0.4, 0.7), rng.uniform(0.25, 0.45)
    ring = (np.mod(t - rng.uniform(0.0, 0.3), on + off) < on).astype(float)
    return tones * trill * ring


def drum_beating(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Regular low thumps with a pitch drop and a short stick click."""
    out = np.zeros(n)
    f0, decay = rng.uniform(55, 110), rng.uniform(0.1, 0.22)
    period = rng.uniform(0.28, 0.55)
    length = int(6 * decay * sr)
    t = np.arange(length, dtype=np.float32) / sr
    hit = np.exp(-t / decay) * _tone(f0 * (1.0 + 0.8 * np.exp(-t / 0.03)), length, sr)
    hit[:512] += 0.4 * np.exp(-t[:512] / 0.004) * _band_noise(rng, 512, sr, 2500, 1.5)
    for onset in np.arange(rng.uniform(0.0, period), n / sr, period):
        _place(out, int(onset * sr), hit)
    return out


def wind_blowing(rng: np.random.Generator, n: int, sr: int) -> np.ndarray:
    """Low broadband rush whose loudness and colour swell slowly."""
    t = np.arange(n, dtype=np.float32) / sr
    low = _band_noise(rng, n, sr, rng.uniform(250, 400), 1.5)
    high = _band_noise(rng, n, sr, rng.uniform(600, 900), 1.5)
    swell = sum(_sin(2 * np.pi * rng.uniform(0.2, 0.9) * t + rng.uniform(0, 2 * np.pi)) for _ in range(3)) / 3.0
    blend = 0.5 + 0.5 * swell
    return (0.4 + 0.6 * blend) * ((1.0 - blend) * low + blend * high)


SYNTHS: tuple[Synth, ...] = (
    dog_barking,
    church_bell_ringing,
    siren_wailing,
    rain_falling,
    bird_chirping,
    car_engine_idling,
    people_clapping,
    phone_ringing,
    drum_beating,
    wind_blowing,
)
