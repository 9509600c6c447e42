"""The world's parametric visual objects: one shape, hue and texture per class.

An object is drawn in unit coordinates (u, v) in [-1, 1] around its centre;
its look (exact hue, saturation, value, texture phase) comes from the clip's
own generator, and its placement (centre, size) is chosen by the caller, so a
clip's object looks the same in its own frame and in a scene.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from typing import Callable

import numpy as np

# mask(u, v, phase) -> (inside [bool], shade [float in 0..1] multiplying the colour's value)
Shape = Callable[[np.ndarray, np.ndarray, float], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Look:
    """One class's colour range and shape."""

    hue: float  # degrees
    hue_jitter: float
    saturation: tuple[float, float]
    value: tuple[float, float]
    shape: Shape


def _dog(u, v, phase):
    body = (u / 0.95) ** 2 + (v / 0.5) ** 2 < 1.0
    head = (u - 0.7) ** 2 + (v + 0.45) ** 2 < 0.3**2
    spots = np.sin(7 * u + phase) * np.sin(7 * v + 2 * phase) > 0.55
    return body | head, np.where(spots, 0.45, 1.0)


def _bell(u, v, phase):
    flare = np.abs(u) < 0.3 + 0.45 * (v + 0.9) / 1.5
    body = flare & (v > -0.9) & (v < 0.6)
    rim = (np.abs(u) < 0.85) & (v >= 0.6) & (v < 0.8)
    clapper = u**2 + (v - 0.88) ** 2 < 0.12**2
    bands = np.where(np.abs(np.sin(9 * v + phase)) > 0.85, 0.7, 1.0)
    return body | rim | clapper, bands


def _siren(u, v, phase):
    r = np.sqrt(u**2 + v**2)
    rings = np.sin(10 * r + phase) > 0
    return r < 0.9, np.where(rings, 1.0, 0.55)


def _rain(u, v, phase):
    column = np.floor((u + 1.0) * 4.0)
    streak = np.mod((u + 1.0) * 4.0, 1.0) < 0.4
    drop = np.mod(v * 2.5 + 0.37 * column + phase, 1.0) < 0.55
    return (np.abs(u) < 0.95) & (np.abs(v) < 0.95) & streak & drop, np.ones_like(u)


def _bird(u, v, phase):
    body = (np.abs(v) < 0.45 * (1.0 - (u + 0.9) / 1.5)) & (u > -0.9) & (u < 0.6)
    head = (u - 0.55) ** 2 + (v + 0.3) ** 2 < 0.28**2
    wing = (v < 0) & (v > -0.75) & (np.abs(u + 0.1) < 0.3 * (1 + v / 0.75))
    feathers = np.where(np.sin(12 * (u - v) + phase) > 0.6, 0.7, 1.0)
    return body | head | wing, feathers


def _car(u, v, phase):
    body = (np.abs(u) < 0.95) & (v > -0.25) & (v < 0.4)
    cabin = (np.abs(u + 0.05) < 0.5) & (v > -0.7) & (v <= -0.25)
    wheels = ((np.abs(u) - 0.55) ** 2 + (v - 0.45) ** 2) < 0.25**2
    window = (np.abs(u + 0.05) < 0.38) & (v > -0.6) & (v < -0.32)
    shade = np.where(wheels, 0.0, np.where(window, 3.5, 1.0))
    return body | cabin | wheels, shade


def _clapping(u, v, phase):
    left = (np.abs(u + 0.3 - 0.25 * v) < 0.28) & (np.abs(v) < 0.85)
    right = (np.abs(u - 0.3 + 0.25 * v) < 0.28) & (np.abs(v) < 0.85)
    fingers = np.where((v < -0.2) & (np.sin(30 * u + phase) > 0.7), 0.75, 1.0)
    return left | right, fingers


def _phone(u, v, phase):
    case = (np.abs(u) < 0.5) & (np.abs(v) < 0.92)
    screen = (np.abs(u) < 0.38) & (v > -0.78) & (v < 0.0)
    keys = (np.abs(u) < 0.38) & (v > 0.1) & (v < 0.8) & (np.sin(16 * u) > 0.2) & (np.sin(16 * v + phase) > 0.2)
    return case, np.where(screen, 0.45, np.where(keys, 1.35, 1.0))


def _drum(u, v, phase):
    side = (np.abs(u) < 0.8) & (v > -0.4) & (v < 0.7)
    top = (u / 0.8) ** 2 + ((v + 0.4) / 0.25) ** 2 < 1.0
    zigzag = np.abs(np.mod(6 * u + phase, 2.0) - 1.0) * 0.8 - 0.2 > v - 0.1
    shade = np.where(top & ~side | (top & (v < -0.4)), 1.4, np.where(side & zigzag, 0.6, 1.0))
    return side | top, shade


def _wind(u, v, phase):
    lines = np.zeros_like(u, dtype=bool)
    for k in (-1, 0, 1):
        lines |= np.abs(v - 0.55 * k - 0.18 * np.sin(3.2 * u + phase + k)) < 0.11
    return lines & (np.abs(u) < 0.95), np.ones_like(u)


LOOKS: tuple[Look, ...] = (
    Look(28, 6, (0.6, 0.8), (0.5, 0.7), _dog),
    Look(52, 5, (0.75, 0.95), (0.85, 1.0), _bell),
    Look(0, 6, (0.8, 1.0), (0.8, 1.0), _siren),
    Look(215, 8, (0.7, 0.95), (0.75, 1.0), _rain),
    Look(110, 10, (0.7, 0.95), (0.6, 0.85), _bird),
    Look(0, 180, (0.0, 0.2), (0.12, 0.22), _car),
    Look(325, 8, (0.35, 0.55), (0.9, 1.0), _clapping),
    Look(278, 8, (0.6, 0.85), (0.6, 0.8), _phone),
    Look(172, 6, (0.7, 0.9), (0.55, 0.75), _drum),
    Look(0, 180, (0.0, 0.06), (0.93, 1.0), _wind),
)


def hsv(h_degrees: float, s: float, v: float) -> np.ndarray:
    return np.array(colorsys.hsv_to_rgb((h_degrees % 360.0) / 360.0, s, v))


@dataclass(frozen=True)
class Appearance:
    """One clip's drawn object: its colour and texture phase."""

    look: Look
    colour: np.ndarray  # float RGB in [0, 1]
    phase: float


def appearance(look: Look, rng: np.random.Generator) -> Appearance:
    colour = hsv(
        look.hue + rng.uniform(-look.hue_jitter, look.hue_jitter),
        rng.uniform(*look.saturation),
        rng.uniform(*look.value),
    )
    return Appearance(look, colour, float(rng.uniform(0, 2 * np.pi)))


def background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A muted two-colour vertical gradient with faint grain: float [H, W, 3]."""
    hue = rng.uniform(0, 360)
    top = hsv(hue, rng.uniform(0.0, 0.25), rng.uniform(0.35, 0.7))
    bottom = hsv(hue + rng.uniform(-40, 40), rng.uniform(0.0, 0.25), rng.uniform(0.35, 0.7))
    ramp = np.linspace(0.0, 1.0, size)[:, None, None]
    canvas = (1.0 - ramp) * top + ramp * bottom
    canvas = np.broadcast_to(canvas, (size, size, 3)) + rng.normal(0.0, 0.02, (size, size, 1))
    return np.array(canvas)


def draw(canvas: np.ndarray, look: Appearance, centre: tuple[float, float], half_size: float) -> None:
    """Paint the object into `canvas` (float [H, W, 3]) in place."""
    size = canvas.shape[0]
    grid = np.arange(size) + 0.5
    u = (grid[None, :] - centre[1]) / half_size
    v = (grid[:, None] - centre[0]) / half_size
    u, v = np.broadcast_arrays(u, v)
    inside, shade = look.look.shape(u, v, look.phase)
    painted = np.clip(look.colour[None, None, :] * np.broadcast_to(shade, u.shape)[..., None], 0.0, 1.0)
    canvas[inside] = painted[inside]


def to_uint8(canvas: np.ndarray) -> np.ndarray:
    return np.clip(np.round(canvas * 255.0), 0, 255).astype(np.uint8)
