"""Reference features as portable files.

The features of a suite's reference images are the expensive, shareable
part of FID/KID (a full Inception pass over thousands of frames). `export`
writes them, with the suite and backbone identity, to one file; `import`
checks that identity against this installation and puts the arrays in the
feature cache under the same content key a run computes, so the next run's
reference pass is a cache hit.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import torch

from .cache import ArrayCache, atomic_write, avbench_home
from .errors import AvbenchError
from .features import Backbones, FeatureStore
from .items.media import MediaStore
from .items.media_index import MediaIndex
from .items.sources import data_source
from .scoring import reference_set
from .suites.spec import load_suite

FORMAT = "avbench-reference-features/1"


def _store(cache_dir: Path | None, device: str, batch_size: int) -> FeatureStore:
    cache = ArrayCache(Path(cache_dir) if cache_dir else avbench_home() / "cache" / "features")
    return FeatureStore(cache, Backbones(torch.device(device)), batch_size)


def export(
    suite_name: str,
    backbone: str,
    out: Path,
    which: str = "reference",
    data_root: Path | None = None,
    cache_dir: Path | None = None,
    device: str = "cpu",
    batch_size: int = 32,
) -> dict:
    """Compute (or read from the cache) a suite's reference features and write them to `out`."""
    suite = load_suite(suite_name)
    store = _store(cache_dir, device, batch_size)
    source = data_source(suite, data_root)
    with MediaStore(source, suite, MediaIndex(store.cache.root / "media", suite, source.kind()), batch_size) as media:
        images = reference_set(media.media(list(suite.items)), which, suite.name)
        layers = store.images(backbone, images)
    meta = {
        "format": FORMAT,
        "suite": [suite.name, suite.version, suite.manifest_sha256],
        "which": which,
        "n": len(images),
        "backbone": store.backbones.identity(backbone),
        "key": store.key(backbone, "images", images.hashes),
    }
    buffer = io.BytesIO()
    np.savez(buffer, __meta__=np.array(json.dumps(meta, sort_keys=True)), **layers)
    atomic_write(out, buffer.getvalue())
    return meta


def import_file(path: Path, cache_dir: Path | None = None) -> dict:
    """Validate an exported file and install it in the feature cache."""
    try:
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["__meta__"]))
            layers = {k: data[k] for k in data.files if k != "__meta__"}
    except (OSError, ValueError, KeyError) as exc:
        raise AvbenchError(f"{path}: not a reference-features file ({exc})") from None
    if meta.get("format") != FORMAT:
        raise AvbenchError(f"{path}: format {meta.get('format')!r}, expected {FORMAT!r}")
    store = _store(cache_dir, "cpu", 1)
    here = store.backbones.identity(meta["backbone"]["name"])
    if here != meta["backbone"]:
        raise AvbenchError(f"{path}: made with backbone {meta['backbone']}, but this installation pins {here}")
    if any(len(v) != meta["n"] for v in layers.values()):
        raise AvbenchError(f"{path}: feature rows do not match its item count {meta['n']}")
    store.cache.put(meta["key"], layers)
    return meta
