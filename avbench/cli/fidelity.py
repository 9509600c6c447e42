"""`avbench fidelity DIR1 DIR2`: FID / KID / IS / CLIP-FID between two folders of images.

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
from rich.table import Table

from ..errors import AvbenchError

console = Console()
# --metrics token -> (which backbone option feeds it, plugin metric)
_TOKENS = {"fid": ("backbone", "fd"), "kid": ("backbone", "kid"), "is": ("backbone", "is"), "clip-fid": ("clip", "fd")}


def load_backbone(name: str, weights_file: Optional[Path], device) -> tuple[object, dict]:
    """Load backbone `name` with its pinned weights, or with `weights_file` (recorded as unverified)."""
    from .. import weights
    from ..registry import import_target, backbones

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
    extractor = import_target(spec.loader)(spec, path, device)
    extractor.weights_sha256 = sha
    info = {"preprocessing": spec.preprocessing, "weights": {"entry": spec.weights, "path": str(path), "sha256": sha, "verified": verified}}
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
    kid_subset_size: int = 1000,
) -> dict:
    """Score two folders; returns the JSON-ready result."""
    import torch_fidelity

    from .. import __version__
    from ..folders import FolderInputs
    from ..metrics.fidelity import FidelityMetric

    unknown = [m for m in metrics if m not in _TOKENS]
    if unknown or not metrics:
        raise AvbenchError(f"--metrics: unknown {unknown or 'empty list'}; choose from {', '.join(_TOKENS)}")
    plan: dict[str, list[str]] = {}
    for token in metrics:
        target = backbone if _TOKENS[token][0] == "backbone" else clip_backbone
        plan.setdefault(target, [])
        if _TOKENS[token][1] not in plan[target]:
            plan[target].append(_TOKENS[token][1])
    from ..runner import pick_device

    torch_device = pick_device(device)
    extractors, backbones = {}, {}
    for name in plan:
        override = weights_file if name == backbone else clip_weights_file
        extractors[name], backbones[name] = load_backbone(name, override, torch_device)
    inputs = FolderInputs(generated, reference, extractors, batch_size=batch_size)
    values = []
    for name, wanted in plan.items():
        options = {"backbone": name, "metrics": wanted, "allow_small_n": allow_small_n, "kid_subset_size": kid_subset_size}
        values += FidelityMetric().compute(inputs, options)
    return {
        "generated": {"path": str(generated), "n": len(inputs.files["generated"])},
        "reference": {"path": str(reference), "n": len(inputs.files["reference"])},
        "backbones": backbones,
        "metrics": {
            v.name: {"value": v.value, "spread": v.spread, "higher_is_better": v.higher_is_better, "n": v.n, "details": v.details}
            for v in values
        },
        "versions": {"avbench": __version__, "torch_fidelity": torch_fidelity.__version__},
    }


def fidelity(
    generated: Path = typer.Argument(..., help="Folder of generated images (PNG/JPEG)."),
    reference: Path = typer.Argument(..., help="Folder of reference images (PNG/JPEG)."),
    metrics: str = typer.Option("fid,kid,is", help="Comma-separated: fid, kid, is, clip-fid."),
    backbone: str = typer.Option("inception-v3-compat", help="Backbone for fid, kid and is."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="Use this weights file for --backbone (recorded as unverified)."),
    clip_backbone: str = typer.Option("clip-vit-b32-openai", help="Backbone for clip-fid."),
    clip_weights: Optional[Path] = typer.Option(None, "--clip-weights", help="Use this weights file for --clip-backbone."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
    batch_size: int = typer.Option(64, min=1),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:1, ..."),
    allow_small_n: bool = typer.Option(False, help="Shrink KID subsets to the number of images when there are fewer than --kid-subset-size."),
    kid_subset_size: int = typer.Option(1000, min=2, help="KID subset size (protocol: 1000)."),
) -> None:
    """Score a folder of generated images against a folder of reference images (FID, KID, IS, CLIP-FID)."""
    result = score_folders(
        generated, reference, [m.strip() for m in metrics.split(",") if m.strip()], backbone, weights,
        clip_backbone, clip_weights, batch_size, device, allow_small_n, kid_subset_size,
    )
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    table = Table("metric", "value", "spread", "n")
    for name, value in result["metrics"].items():
        spread = "" if value["spread"] is None else f"{value['spread']:.6g}"
        table.add_row(name, f"{value['value']:.6g}", spread, str(value["n"]))
    console.print(table)
    for name, info in result["backbones"].items():
        if not info["weights"]["verified"]:
            console.print(f"[yellow]warning:[/] {name}: weights {info['weights']['path']} not verified (sha256 {info['weights']['sha256']})")
