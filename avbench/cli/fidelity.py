"""`avbench fidelity DIR1 DIR2`: FID / KID / IS / CLIP-FID / FD-DINOv2 / PRDC / CMMD between two folders of images.

The same metric plugin a suite run uses, fed by `FolderInputs` instead of a
run. Weights are the pinned, verified files unless `--weights FILE` is given;
the output then marks them `"verified": false` (unless the file happens to
hash to the pinned value).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..defaults import KID_SUBSET_SIZE
from ..errors import AvbenchError, WeightsError

console = Console()
# --metrics token -> (the backbone role that feeds it, metric plugin, the plugin's sub-metric or None)
_TOKENS = {
    "fid": ("backbone", "fidelity", "fd"),
    "kid": ("backbone", "fidelity", "kid"),
    "is": ("backbone", "fidelity", "is"),
    "clip-fid": ("clip", "fidelity", "fd"),
    "fd-dinov2": ("dinov2", "fidelity", "fd"),
    "prdc": ("dinov2", "prdc", None),
    "cmmd": ("cmmd", "cmmd", None),
}


def load_backbone(name: str, weights_file: Optional[Path], device) -> tuple[object, dict]:
    """Load backbone `name` with its pinned weights, or with `weights_file` (recorded as unverified)."""
    from .. import weights
    from ..registry import backbones, import_target

    spec = backbones.get(name)
    if weights_file is None:
        path = weights.resolve(spec.weights)
        sha, verified = weights.file_sha256(path), True
    else:
        path = Path(weights_file)
        if not path.is_file():
            raise AvbenchError(f"--weights {path}: no such file")
        sha = weights.file_sha256(path)
        entry = weights.entry(spec.weights) if spec.weights else None
        verified = bool(entry and entry.pinned and entry.matches(sha))
    try:
        extractor = import_target(spec.loader)(spec, path, device)
    except AvbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - the loader is the backbone's own code; any failure is this file's
        raise WeightsError(
            f"{path} cannot be loaded as {name} weights: {type(exc).__name__}: {str(exc) or 'no detail'}"
            " (empty, truncated or another model's file?)"
        ) from None
    extractor.weights_sha256 = sha
    info = {
        "preprocessing": spec.preprocessing,
        "weights": {"entry": spec.weights, "path": str(path), "sha256": sha, "verified": verified},
    }
    return extractor, info


def score_folders(
    generated: Path,
    reference: Path,
    metrics: list[str],
    backbone: str = "inception-v3-compat",
    weights_file: Optional[Path] = None,
    clip_backbone: str = "clip-vit-b32-openai",
    clip_weights_file: Optional[Path] = None,
    batch_size: int = 64,
    device: str = "auto",
    allow_small_n: bool = False,
    kid_subset_size: int = KID_SUBSET_SIZE,
    dinov2_backbone: str = "dinov2-vitl14",
    dinov2_weights_file: Optional[Path] = None,
    cmmd_backbone: str = "clip-vit-l14-336-openai",
    cmmd_weights_file: Optional[Path] = None,
    prdc_k: int = 5,
) -> dict:
    """Score two folders; returns the JSON-ready result."""
    import torch_fidelity

    from .. import __version__
    from ..image_folders import FolderInputs
    from ..registry import metrics as metric_registry

    unknown = [m for m in metrics if m not in _TOKENS]
    if unknown or not metrics:
        raise AvbenchError(f"--metrics: unknown {unknown or 'empty list'}; choose from {', '.join(_TOKENS)}")
    roles = {
        "backbone": (backbone, weights_file),
        "clip": (clip_backbone, clip_weights_file),
        "dinov2": (dinov2_backbone, dinov2_weights_file),
        "cmmd": (cmmd_backbone, cmmd_weights_file),
    }
    plan: dict[str, dict[str, list]] = {}  # backbone -> plugin -> sub-metrics
    overrides: dict[str, Optional[Path]] = {}
    for token in metrics:
        role, plugin, sub = _TOKENS[token]
        name, override = roles[role]
        if overrides.setdefault(name, override) != override:
            raise AvbenchError(
                f"backbone {name!r} is given two different weights files ({overrides[name]}, {override})"
            )
        subs = plan.setdefault(name, {}).setdefault(plugin, [])
        if sub is not None and sub not in subs:
            subs.append(sub)
    from ..runner import pick_device

    torch_device = pick_device(device)
    extractors, backbones = {}, {}
    for name in plan:
        extractors[name], backbones[name] = load_backbone(name, overrides[name], torch_device)
    inputs = FolderInputs(generated, reference, extractors, batch_size=batch_size)
    if any("fd" in plugins.get("fidelity", ()) for plugins in plan.values()):
        for which, folder in (("generated", generated), ("reference", reference)):
            if len(inputs.files[which]) < 2:
                raise AvbenchError(
                    f"a Fréchet distance needs at least 2 images per folder; {folder} has {len(inputs.files[which])}"
                )
    values = []
    for name, plugins in plan.items():
        for plugin, subs in plugins.items():
            options: dict = {"backbone": name}
            if plugin == "fidelity":
                options.update(metrics=subs, allow_small_n=allow_small_n, kid_subset_size=kid_subset_size)
            elif plugin == "prdc":
                options["k"] = prdc_k
            values += metric_registry.get(plugin)().compute(inputs, options)
    return {
        "generated": {"path": str(generated), "n": len(inputs.files["generated"])},
        "reference": {"path": str(reference), "n": len(inputs.files["reference"])},
        "backbones": backbones,
        "metrics": {
            v.name: {
                "value": v.value,
                "spread": v.spread,
                "higher_is_better": v.higher_is_better,
                "n": v.n,
                "details": v.details,
            }
            for v in values
        },
        "versions": {"avbench": __version__, "torch_fidelity": torch_fidelity.__version__},
    }


def fidelity(
    generated: Path = typer.Argument(..., help="Folder of generated images (PNG/JPEG)."),
    reference: Path = typer.Argument(..., help="Folder of reference images (PNG/JPEG)."),
    metrics: str = typer.Option("fid,kid,is", help="Comma-separated: fid, kid, is, clip-fid, fd-dinov2, prdc, cmmd."),
    backbone: str = typer.Option("inception-v3-compat", help="Backbone for fid, kid and is."),
    weights: Optional[Path] = typer.Option(
        None, "--weights", help="Use this weights file for --backbone (recorded as unverified)."
    ),
    clip_backbone: str = typer.Option("clip-vit-b32-openai", help="Backbone for clip-fid."),
    clip_weights: Optional[Path] = typer.Option(
        None, "--clip-weights", help="Use this weights file for --clip-backbone."
    ),
    dinov2_backbone: str = typer.Option("dinov2-vitl14", help="Backbone for fd-dinov2 and prdc."),
    dinov2_weights: Optional[Path] = typer.Option(
        None, "--dinov2-weights", help="Use this weights file for --dinov2-backbone (no hash is published for DINOv2)."
    ),
    cmmd_backbone: str = typer.Option("clip-vit-l14-336-openai", help="Backbone for cmmd."),
    cmmd_weights: Optional[Path] = typer.Option(
        None, "--cmmd-weights", help="Use this weights file for --cmmd-backbone."
    ),
    prdc_k: int = typer.Option(5, min=1, help="k of the k-NN balls of precision, recall, density and coverage."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    batch_size: int = typer.Option(64, min=1),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    allow_small_n: bool = typer.Option(
        False, help="Shrink KID subsets to the number of images when there are fewer than --kid-subset-size."
    ),
    kid_subset_size: int = typer.Option(KID_SUBSET_SIZE, min=2, help=f"KID subset size (protocol: {KID_SUBSET_SIZE})."),
) -> None:
    """Score a folder of generated images against a folder of reference images (FID, KID, IS, CLIP-FID, FD-DINOv2,
    precision / recall / density / coverage, CMMD)."""
    result = score_folders(
        generated,
        reference,
        [m.strip() for m in metrics.split(",") if m.strip()],
        backbone,
        weights,
        clip_backbone,
        clip_weights,
        batch_size,
        device,
        allow_small_n,
        kid_subset_size,
        dinov2_backbone,
        dinov2_weights,
        cmmd_backbone,
        cmmd_weights,
        prdc_k,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table("metric", "value", "spread", "n")
    notes = []
    for name, value in result["metrics"].items():
        spread = "" if value["spread"] is None else f"{value['spread']:.6g}"
        table.add_row(escape(name), f"{value['value']:.6g}", spread, str(value["n"]))
        if value["details"].get("note"):  # small N, rank-deficient covariances: what --json also says
            notes.append(f"{name}: {value['details']['note']}")
    console.print(table)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for name, info in result["backbones"].items():
        if not info["weights"]["verified"]:
            console.print(
                f"[yellow]warning:[/] {escape(name)}: weights {escape(info['weights']['path'])} not verified "
                f"(sha256 {info['weights']['sha256']})"
            )
