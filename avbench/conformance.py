"""`avbench conformance`: does an adapter compute what the official code computes?

A case file is a safetensors file recorded by running a system's official code
(typically with seeded random weights at reduced width). Its header metadata
key "conformance" holds JSON with at least a "keys" map (case key -> free-text
description). Tensors are the inputs and the outputs at each stage boundary;
a key may carry a prefix naming its case ("case0.embedding"): tolerances and
the adapter's `conformance_inputs` are looked up by the full key first, then by
the part after the last dot.

The model is loaded through its normal paper loader, with the reduced
hyper-parameters of `--config` as `architecture`, then `Model.conformance`
computes every output key it can. Verdicts:
  float keys    max |Δ| <= tolerance (plus, for keys in the optional
                `conformance_rtol`, rtol * |reference| element-wise);
  integer keys  |Δ| in their own units (uint8 pixel levels, timesteps);
                tolerance 0 means exact; with a tolerance > 0 at most 0.1 %
                of the elements may differ at all;
  a key the adapter does not return, or with another shape, fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Mapping

import torch

from .errors import AvbenchError

METADATA_KEY = "conformance"
MAX_CONFIG_BYTES = 1 << 20
INTEGER_DIFF_FRACTION = 0.001  # integer keys with a tolerance > 0: at most 0.1 % of elements may differ


class ConformanceUsageError(AvbenchError):
    """A missing or malformed input file (exit 2)."""


@dataclass(frozen=True)
class KeyResult:
    key: str
    passed: bool
    max_abs: float | None
    tolerance: float | None
    note: str = ""

    def row(self) -> dict:
        row = asdict(self)
        if row["max_abs"] is not None and not math.isfinite(row["max_abs"]):
            row["max_abs"] = str(row["max_abs"])  # strict JSON has no inf/nan
        return row


def read_cases(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """All tensors of a case file and its parsed "conformance" metadata."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise ConformanceUsageError(f"case file {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = dict(handle.metadata() or {})
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ConformanceUsageError(f"case file {path} is not a valid safetensors file ({exc})") from None
    if METADATA_KEY not in metadata:
        raise ConformanceUsageError(f"case file {path} has no {METADATA_KEY!r} metadata (JSON with a 'keys' map)")
    try:
        meta = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise ConformanceUsageError(f"case file {path}: metadata {METADATA_KEY!r} is not JSON ({exc})") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("keys"), dict):
        raise ConformanceUsageError(f"case file {path}: metadata {METADATA_KEY!r} must be an object with a 'keys' map")
    return tensors, meta


def read_architecture(path: str | Path) -> dict:
    """The `--config` JSON (reduced hyper-parameters), size-bounded."""
    path = Path(path)
    if not path.is_file():
        raise ConformanceUsageError(f"architecture config {path} does not exist (pass --config FILE)")
    if path.stat().st_size > MAX_CONFIG_BYTES:
        raise ConformanceUsageError(f"architecture config {path} is larger than {MAX_CONFIG_BYTES} bytes")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConformanceUsageError(f"architecture config {path} is not JSON ({exc})") from None
    if not isinstance(config, dict):
        raise ConformanceUsageError(f"architecture config {path} must hold a JSON object")
    return config


def _lookup(mapping: Mapping[str, float], key: str) -> float | None:
    if key in mapping:
        return float(mapping[key])
    base = key.rsplit(".", 1)[-1]
    return float(mapping[base]) if base in mapping else None


def is_input(inputs: frozenset[str], key: str) -> bool:
    return key in inputs or key.rsplit(".", 1)[-1] in inputs


def compare(
    key: str, expected: torch.Tensor, actual: torch.Tensor | None, tolerance: float | None, rtol: float | None = None
) -> KeyResult:
    """One verdict (see the module docstring for the rules)."""
    if actual is None:
        return KeyResult(key, False, None, tolerance, "model cannot run this case")
    if tolerance is None:
        return KeyResult(key, False, None, None, "the model declares no tolerance for this key")
    actual = torch.as_tensor(actual).detach().cpu()
    if tuple(actual.shape) != tuple(expected.shape):
        return KeyResult(
            key, False, None, tolerance, f"shape {tuple(actual.shape)} != expected {tuple(expected.shape)}"
        )
    if not expected.is_floating_point() and not expected.is_complex():
        if actual.is_floating_point() and not torch.equal(actual, actual.round()):
            return KeyResult(key, False, None, tolerance, "integer key returned as non-integer values")
        diff = (actual.to(torch.int64) - expected.to(torch.int64)).abs()
        worst = float(diff.max()) if diff.numel() else 0.0
        fraction = float((diff > 0).double().mean()) if diff.numel() else 0.0
        ok = worst <= tolerance and (tolerance == 0 or fraction <= INTEGER_DIFF_FRACTION)
        note = f"integer units; {fraction * 100:.4f} % of elements differ"
        if tolerance > 0:
            note += f" (at most {INTEGER_DIFF_FRACTION * 100:g} % allowed)"
        return KeyResult(key, ok, worst, tolerance, note)
    diff = (actual.double() - expected.double()).abs()
    if not bool(torch.isfinite(actual.double()).all()):
        return KeyResult(key, False, math.inf, tolerance, "non-finite values")
    worst = float(diff.max()) if diff.numel() else 0.0
    if rtol:
        bound = tolerance + rtol * expected.double().abs()
        ok = bool((diff <= bound).all())
        return KeyResult(key, ok, worst, tolerance, f"element-wise |Δ| <= {tolerance:g} + {rtol:g}·|reference|")
    return KeyResult(key, worst <= tolerance, worst, tolerance)


def check(model, cases: Mapping[str, torch.Tensor], meta: Mapping) -> list[KeyResult]:
    """Run the adapter on a case file's tensors and judge every output key."""
    cls = type(model)
    inputs = frozenset(cls.conformance_inputs)
    outputs = [key for key in cases if not is_input(inputs, key)]
    try:
        computed = model.conformance(cases, meta) or {}
    except AvbenchError:
        raise
    except Exception as exc:  # the adapter failed on this file: every output fails, with the reason
        reason = f"model failed: {type(exc).__name__}: {exc}"
        return [KeyResult(key, False, None, _lookup(cls.conformance_tolerances, key), reason) for key in outputs]
    rtols = getattr(cls, "conformance_rtol", {})
    return [
        compare(key, cases[key], computed.get(key), _lookup(cls.conformance_tolerances, key), _lookup(rtols, key))
        for key in outputs
    ]


def load_model(name: str, checkpoint: str | Path, architecture: dict, device: str = "cpu"):
    """The registered model `name`, built by its paper loader with reduced `architecture`."""
    from .registry import models

    cls = models.get(name)
    try:
        return cls.from_checkpoint(checkpoint, device=device, suite=None, architecture=architecture)
    except TypeError as exc:
        if "architecture" in str(exc):
            raise AvbenchError(f"model {name!r} does not accept an architecture config (no conformance hook)") from None
        raise


def run(
    name: str, checkpoint: str | Path, cases_path: str | Path, config: str | Path | None = None, device: str = "cpu"
) -> list[KeyResult]:
    checkpoint = Path(checkpoint)
    if not checkpoint.exists():
        raise ConformanceUsageError(f"checkpoint {checkpoint} does not exist")
    architecture = read_architecture(config if config is not None else checkpoint / "config.json")
    cases, meta = read_cases(cases_path)
    model = load_model(name, checkpoint, architecture, device)
    with torch.inference_mode():
        return check(model, cases, meta)


def format_results(results: list[KeyResult]) -> str:
    width = max([len(r.key) for r in results] + [3])
    lines = [f"{'key':<{width}}  {'max |Δ|':>11}  {'tolerance':>10}  verdict"]
    for r in results:
        worst = "—" if r.max_abs is None else f"{r.max_abs:.3e}"
        tol = "—" if r.tolerance is None else f"{r.tolerance:.1e}"
        verdict = "pass" if r.passed else "FAIL"
        lines.append(f"{r.key:<{width}}  {worst:>11}  {tol:>10}  {verdict}" + (f"  ({r.note})" if r.note else ""))
    failed = [r.key for r in results if not r.passed]
    lines.append(
        f"{len(results) - len(failed)}/{len(results)} keys pass" + (f"; failed: {', '.join(failed)}" if failed else "")
    )
    return "\n".join(lines)
