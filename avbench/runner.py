"""One run: suite -> items -> model -> outputs (cached) -> features (cached) -> metrics (cached) -> record.

Under torchrun the items are sharded across ranks for generation and
feature passes; rank 0 writes the one record.

The runner knows no particular model or metric. Outputs land in the run
directory item by item (see outputs.py), so a killed run resumes where it
stopped; features and metric scores land in the content-addressed cache,
with each item's media hashes and the model's identity beside them, so a
second run builds no model, loads no media and recomputes nothing.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import logging
import platform
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soxr
import torch

from . import __version__, defaults, weights
from .cache import ArrayCache, atomic_write_text, avbench_home, locked, stable_hash
from .distributed import init_from_env
from .errors import AvbenchError, CheckpointError, DataError, ModelOutputError
from .features import Backbones, FeatureStore
from .items.loader import batches
from .items.media import ItemMedia, MediaStore
from .items.media_index import MediaIndex
from .items.sources import ReadyItem, data_source
from .models.base import Batch, Model
from .models.checks import as_image, as_waveforms, batch_list
from .models.handle import ModelHandle, open_model
from .outputs import Encoded, OutputStore, OutputWriter, WriteFailed, png_bytes, wav_bytes
from .progress import progress
from .record import Counts, Failure, MetricEntry, ModelInfo, Record, SuiteInfo, dumps, spec_sha256
from .registry import models as model_registry
from .score_cache import ScoreCache
from .scoring import RunScoring, check_metrics_can_run, items_csv, score_task
from .suites.spec import Suite, load_suite
from .versions import DISTRIBUTIONS, installed

log = logging.getLogger("avbench.run")


@dataclass
class RunOptions:
    """What `avbench run` and `avbench.evaluate` take; checked here, so both refuse the same values up front."""

    model: str
    suite: str
    checkpoint: str | None = None
    data_root: Path | None = None
    out: Path | None = None
    device: str = defaults.DEVICE
    batch_size: int = defaults.BATCH_SIZE
    limit: int | None = None
    seed: int = defaults.SEED
    allow_missing: bool = False
    allow_small_n: bool = False
    on_error: str = defaults.ON_ERROR  # one of defaults.ON_ERROR_CHOICES
    cache_dir: Path | None = None
    item_timeout: float | None = None  # seconds per item before a model call counts as hung
    workers: int | None = None  # data-loading processes (None: one when a core is spare)

    def __post_init__(self) -> None:
        def whole(value) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        problems = [
            f"{name} must be {rule}, not {value!r}"
            for name, value, ok, rule in [
                ("batch_size", self.batch_size, whole(self.batch_size) and self.batch_size >= 1, "an integer >= 1"),
                ("limit", self.limit, self.limit is None or whole(self.limit) and self.limit >= 1, "an integer >= 1"),
                ("seed", self.seed, whole(self.seed) and 0 <= self.seed < 2**63, "an integer in [0, 2**63)"),
                (
                    "on_error",
                    self.on_error,
                    self.on_error in defaults.ON_ERROR_CHOICES,
                    " or ".join(defaults.ON_ERROR_CHOICES),
                ),
                (
                    "item_timeout",
                    self.item_timeout,
                    self.item_timeout is None or isinstance(self.item_timeout, (int, float)) and self.item_timeout > 0,
                    "a number of seconds > 0",
                ),
                (
                    "workers",
                    self.workers,
                    self.workers is None or whole(self.workers) and self.workers >= 0,
                    "an integer >= 0",
                ),
            ]
            if not ok
        ]
        if problems:
            raise AvbenchError("; ".join(problems))


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError as exc:
        raise AvbenchError(f"--device {device!r} is not a torch device ({exc})") from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise AvbenchError(f"--device {device} was asked for, but CUDA is not available here")
    return chosen


def call_with_timeout(function, argument, seconds: float):
    """Call in a daemon thread; a call still running after `seconds` raises TimeoutError.

    A hung call cannot be stopped from Python, so its thread is abandoned.
    """
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = function(argument)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            result["error"] = exc

    thread = threading.Thread(target=target, daemon=True, name="avbench-model-call")
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise TimeoutError(f"no answer within {seconds:g} s (--item-timeout)")
    if "error" in result:
        raise result["error"]
    return result["value"]


_WRITE_ADVICE = {
    errno.ENOSPC: "free the space",
    errno.EDQUOT: "free the space",
    errno.EACCES: "make the folder writable or choose another --out",
    errno.EPERM: "make the folder writable or choose another --out",
    errno.EROFS: "choose an --out on a writable file system",
    errno.ENOTDIR: "a part of the path is a file: choose another --out",
    errno.EEXIST: "a file stands where a folder belongs: choose another --out",
}


def cannot_write(what: str, exc: OSError) -> AvbenchError:
    """A failed write as one clear error whose advice fits the cause; nothing written before is lost."""
    advice = _WRITE_ADVICE.get(exc.errno, "fix the cause")
    return AvbenchError(
        f"cannot write {what} ({exc.strerror or exc}); every item written before is kept: "
        f"{advice} and run the same command again to resume"
    )


def item_seed(run_seed: int, item_seed: int) -> int:
    """Per-item seed, independent of batch size and order."""
    return int(stable_hash([run_seed, item_seed])[:8], 16)


class Run:
    def __init__(self, options: RunOptions, model: Model | None = None):
        """Everything known before generation is checked here, before any model is built or called."""
        self.options = options
        self.suite: Suite = load_suite(options.suite)
        self.world, device = init_from_env(options.device)
        self.device = pick_device(device)
        self.cache = ArrayCache(Path(options.cache_dir) if options.cache_dir else avbench_home() / "cache" / "features")
        self.model_cls = type(model) if model is not None else model_registry.get(options.model)
        self.tasks = [t for t in self.suite.tasks if self.model_cls.supports(t)]
        if not self.tasks:
            raise AvbenchError(
                f"model {self.model_cls.name!r} supports {sorted(self.model_cls.tasks) or 'no task'}, "
                f"suite {self.suite.name!r} needs one of {list(self.suite.tasks)}"
            )
        self.unsupported_tasks = [t for t in self.suite.tasks if t not in self.tasks]
        if self.unsupported_tasks:
            log.warning("%s", self._unsupported_note())
        items = list(self.suite.items)
        self.n_original = len(items)
        if options.limit is not None:
            items = items[: options.limit]
        self.source = data_source(self.suite, options.data_root)
        self.missing: dict[str, list[str]] = {}
        for item in items:
            absent = self.source.missing(item)
            if absent:
                self.missing[item.id] = absent
        if self.missing and not options.allow_missing:
            first = next(iter(self.missing))
            raise DataError(
                f"{len(self.missing)} of {len(items)} items of {self.suite.name!r} have missing files "
                f"(first: item {first}: {self.missing[first][0]}); pass --allow-missing to evaluate the items present"
            )
        self.items = [item for item in items if item.id not in self.missing]
        if not self.items:
            raise DataError(
                f"no item of {self.suite.name!r} to evaluate: all {len(items)} have missing files "
                f"under {options.data_root}; a run of zero items proves nothing"
            )
        check_metrics_can_run(self.suite, self.tasks, len(self.items), options.allow_small_n)
        self.dir = Path(options.out) if options.out else Path("runs") / f"{self.model_cls.name}_{self.suite.name}"
        if self.dir.exists() and not self.dir.is_dir():
            raise AvbenchError(f"--out {self.dir} is a file, not a run directory; choose another --out")
        self.handle = self._open_model(model)
        self.key_parts = {
            "model": self.handle.identity,
            "suite": [self.suite.name, self.suite.version, self.suite.manifest_sha256],
            "items": [item.id for item in self.items],
            "seed": options.seed,
            "tasks": self.tasks,
            "avbench": __version__,
        }
        self.key = stable_hash(self.key_parts)
        self.store = OutputStore(self.dir)
        self.scores = ScoreCache(self.cache.root / "scores")
        index = MediaIndex(self.cache.root / "media", self.suite, self.source.kind())
        self.media = MediaStore(
            self.source, self.suite, index, options.batch_size, options.workers, scratch_dir=self.dir
        )
        self.model_calls = 0
        self.timings: dict[str, float] = {}

    def _open_model(self, model: Model | None) -> ModelHandle:
        """The model's handle; a plugin that fails to build from its checkpoint is one error naming both."""
        if model is not None:
            return ModelHandle(type(model), lambda: model)
        try:
            return open_model(
                self.model_cls, self.options.checkpoint, str(self.device), self.suite, self.cache.root / "models"
            )
        except AvbenchError:
            raise
        except Exception as exc:  # noqa: BLE001 - plugin code: any failure to build is the checkpoint's or the plugin's
            given = f" from checkpoint {self.options.checkpoint}" if self.options.checkpoint else ""
            raise CheckpointError(
                f"model {self.model_cls.name!r} cannot be built{given}: {type(exc).__name__}: {str(exc) or 'no detail'}"
            ) from None

    def _unsupported_note(self) -> str:
        return (
            f"model {self.model_cls.name!r} does not do {', '.join(self.unsupported_tasks)} of suite "
            f"{self.suite.name!r}; those metrics are left out"
        )

    # -- stage 1: outputs -------------------------------------------------
    def _claim_directory(self) -> None:
        """A run directory belongs to one configuration; refuse to mix two, naming what differs."""
        marker = self.dir / "run.json"
        if marker.exists():
            try:
                claimed = json.loads(marker.read_text("utf-8"))
                key, parts = claimed["run_key"], claimed.get("parts", {})
            except (OSError, ValueError, KeyError, TypeError, AttributeError):
                key, parts = None, {}
            if key != self.key:
                raise AvbenchError(
                    f"{self.dir} holds a run of another configuration ({self._differences(parts)}); "
                    "choose another --out or remove it"
                )
            return
        self._refuse_foreign_record()
        try:
            atomic_write_text(
                marker,
                json.dumps(
                    {
                        "run_key": self.key,
                        "model": self.model_cls.name,
                        "suite": self.suite.name,
                        "parts": self.key_parts,
                    },
                    indent=2,
                    default=str,
                ),
            )
        except OSError as exc:
            raise cannot_write(str(marker), exc) from None

    def _differences(self, claimed: dict) -> str:
        """What of the run key differs from the claimed run's, in words."""
        if not isinstance(claimed, dict) or not claimed:
            return "its run.json does not say what it was"
        differing = [
            name
            for name, value in self.key_parts.items()
            if json.loads(json.dumps(value, default=str)) != claimed.get(name)
        ]
        return "differs in " + ", ".join(differing) if differing else "another run key"

    def _refuse_foreign_record(self) -> None:
        """A record.json written by another run (no run.json of ours) is never overwritten."""
        record = self.dir / defaults.RECORD_FILE
        if record.exists():
            raise AvbenchError(
                f"{self.dir} holds a {defaults.RECORD_FILE} but no run.json: it is not a run of this "
                "configuration; choose another --out or remove it"
            )

    def _batch(self, ready: list[ReadyItem]) -> Batch:
        model = self.handle.get()
        audio = np.stack([r.mixture for r in ready])
        rate = model.sample_rate or self.suite.sample_rate
        if rate != self.suite.sample_rate:
            audio = np.stack([soxr.resample(a, self.suite.sample_rate, rate, quality="HQ") for a in audio]).astype(
                np.float32
            )
        return Batch(
            item_ids=[r.item.id for r in ready],
            audio=torch.from_numpy(audio).to(model.device),
            sample_rate=rate,
            seeds=[item_seed(self.options.seed, r.item.seed) for r in ready],
            num_sources=[r.item.num_sources for r in ready],
            cues=[list(r.truth.source_images) for r in ready],
            truth=[r.truth for r in ready] if self.model_cls.uses_ground_truth else None,
        )

    def _files(self, task: str, ready: ReadyItem, output) -> Encoded:
        """The item's output files, checked here; encoding them is left to the writer thread."""
        where = f"item {ready.item.id} ({task})"
        if task == "generate":
            return {f"{ready.item.id}.png": (png_bytes, as_image(output, where))}
        if task == "generate_per_source":
            images = batch_list(output, ready.item.num_sources, where)
            return {
                f"{ready.item.id}.{k}.png": (png_bytes, as_image(im, f"{where} image {k}"))
                for k, im in enumerate(images)
            }
        waves = as_waveforms(output, ready.item.num_sources, ready.mixture.shape[0], where)
        return {f"{ready.item.id}.wav": (self._wav_bytes, waves)}

    def _wav_bytes(self, waves: np.ndarray) -> bytes:
        return wav_bytes(waves, self.suite.sample_rate)

    def _call(self, task: str, ready: list[ReadyItem]) -> list:
        self.model_calls += 1
        batch = self._batch(ready)
        method = getattr(self.handle.get(), task)
        if self.options.item_timeout is None:
            outputs = method(batch)
        else:
            outputs = call_with_timeout(method, batch, self.options.item_timeout * len(ready))
        return batch_list(outputs, len(ready), f"{self.model_cls.name}.{task}")

    def _generate_batch(self, task: str, ready: list[ReadyItem]) -> None:
        try:
            outputs = self._call(task, ready)
        except Exception as exc:  # noqa: BLE001 - any model failure is isolated per item below
            if len(ready) == 1:
                self._fail(task, ready[0].item.id, f"model raised {type(exc).__name__}: {exc}")
                return
            for one in ready:
                self._generate_batch(task, [one])
            return
        for one, output in zip(ready, outputs, strict=False):
            try:
                files = self._files(task, one, output)
            except ModelOutputError as exc:
                self._fail(task, one.item.id, str(exc))
                continue
            self.writer.submit(task, one.item.id, files)

    def _fail(self, task: str, item_id: str, reason: str) -> None:
        if self.options.on_error == "stop":
            raise AvbenchError(
                f"item {item_id} failed ({task}): {reason}; rerun with --on-error skip to go on past failures"
            )
        log.warning("item %s failed (%s): %s", item_id, task, reason)
        try:
            self.store.write_failure(task, item_id, reason)
        except OSError as exc:
            raise cannot_write(f"the failure of item {item_id} to {self.store.root}", exc) from None

    @contextlib.contextmanager
    def _writing(self):
        """Outputs are encoded and written behind the model calls; all of them are on disk when this exits."""
        self.writer = OutputWriter(self.store, depth=2 * self.options.batch_size)
        try:
            yield
            self.writer.wait()
        except WriteFailed as exc:
            raise cannot_write(f"the outputs of item {exc.item} to {self.store.root}", exc.error) from None
        finally:
            self.writer.shutdown()

    def generate(self, keep_media: bool = False) -> None:
        """Load each pending item once, then run every task it still needs.

        Every loaded item's media hashes go into the media index; with
        `keep_media` (a scoring stage follows in this process) its arrays are
        kept too, so scoring need not load it again.
        """
        start = time.perf_counter()
        if self.world.is_main:
            try:
                self.dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise cannot_write(f"the run directory {self.dir}", exc) from None
            self._claim_directory()
        self.world.barrier()
        pending = {
            item.id: [t for t in self.tasks if self.store.done(t, item.id) is None]
            for item in self.world.shard(self.items)
        }
        todo = [item for item in self.world.shard(self.items) if pending[item.id]]
        total = len(pending)
        with (
            self._writing(),
            progress(
                f"{self.model_cls.name} on {self.suite.name}",
                total=total,
                done=total - len(todo),
                enabled=self.world.is_main,
            ) as advance,
        ):
            for loaded in batches(self.source, self.suite, todo, self.options.batch_size, self.options.workers):
                ready = [r for r in loaded if isinstance(r, ReadyItem)]
                for one in ready:
                    if keep_media:
                        self.media.keep(one)
                    else:
                        self.media.index_only(one)
                for item, reason in (r for r in loaded if not isinstance(r, ReadyItem)):
                    for task in pending[item.id]:
                        self._fail(task, item.id, reason)
                for task in self.tasks:
                    needing = [r for r in ready if task in pending[r.item.id]]
                    if needing:
                        self._generate_batch(task, needing)
                advance(len(loaded))
        self.media.save_index()
        self.world.barrier()
        self.timings["generate"] = time.perf_counter() - start

    # -- stage 2: scoring -------------------------------------------------
    def score(self) -> Record:
        start = time.perf_counter()
        features = FeatureStore(self.cache, Backbones(self.device), self.options.batch_size, self.world)
        done = {(task, item.id): self.store.done(task, item.id) for task in self.tasks for item in self.items}
        for (task, item_id), marker in done.items():
            if marker is None:
                raise AvbenchError(f"item {item_id} has no output for {task}; run generation first")
        scored = [item for item in self.items if any(done[t, item.id].status == "ok" for t in self.tasks)]
        by_id = {m.item.id: m for m in self.media.media(scored)}
        entries, failures, rows = self._score_tasks(done, by_id, features)
        rows.extend(
            {"item": i, "task": t, "status": "missing", "reason": "; ".join(p)}
            for i, p in self.missing.items()
            for t in self.tasks
        )
        self.timings["score"] = time.perf_counter() - start
        table = items_csv(rows)
        record = self._record(entries, failures, features, hashlib.sha256(table.encode("utf-8")).hexdigest())
        if not self.world.is_main:
            return record
        try:
            with locked(self.dir / defaults.RECORD_FILE):
                atomic_write_text(self.dir / defaults.ITEMS_FILE, table)
                atomic_write_text(self.dir / defaults.RECORD_FILE, dumps(record), durable=True)
        except OSError as exc:
            raise cannot_write(f"the record and {defaults.ITEMS_FILE} to {self.dir}", exc) from None
        return record

    def _score_tasks(
        self, done: dict, by_id: dict[str, ItemMedia], features: FeatureStore
    ) -> tuple[list[MetricEntry], list[Failure], list[dict]]:
        """Every task's metric entries, its failures, and the per-item rows of items.csv."""
        entries, failures, rows = [], [], []
        for task in self.tasks:
            ok_ready, ok_done = [], []
            for item in self.items:
                marker = done[task, item.id]
                if marker.status != "ok":
                    failures.append(Failure(item=item.id, task=task, reason=marker.reason))
                    rows.append({"item": item.id, "task": task, "status": "failed", "reason": marker.reason})
                    continue
                ok_ready.append(by_id[item.id])
                ok_done.append(marker)
            inputs = RunScoring(
                self.suite, task, ok_ready, ok_done, self.store, features, self.options.seed, self.options.allow_small_n
            )
            task_entries, per_item = score_task(inputs, self.options.seed, self.scores, self.world)
            entries.extend(task_entries)
            rows.extend(
                {"item": i, "task": task, "status": "ok", "reason": "", **per_item.get(i, {})} for i in inputs.item_ids
            )
        return entries, failures, rows

    def _record(self, entries, failures, features: FeatureStore, item_scores_sha256: str) -> Record:
        failed_items = {f.item for f in failures}
        warnings = [f"{len(failed_items)} item(s) failed and are excluded from every metric"] if failed_items else []
        if self.unsupported_tasks:
            warnings.append(self._unsupported_note())
        if self.missing:
            warnings.append(f"partial run: {len(self.missing)} item(s) missing from the data root")
        if self.model_cls.uses_ground_truth:
            warnings.append("privileged sanity model: it reads the ground truth")
        if unverified := weights.unverified_note(features.backbones.weights):
            warnings.append(unverified)
        return Record(
            schema_version=defaults.SCHEMA_VERSION,
            avbench_version=__version__,
            created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            run_key=self.key,
            model=ModelInfo(
                name=self.model_cls.name,
                version=self.model_cls.version,
                entry=f"{self.model_cls.__module__}:{self.model_cls.__qualname__}",
                checkpoint=self.options.checkpoint,
                checkpoint_sha256=self.handle.identity.get("checkpoint_sha256"),
                uses_ground_truth=self.model_cls.uses_ground_truth,
            ),
            suite=SuiteInfo(
                name=self.suite.name,
                version=self.suite.version,
                protocol=self.suite.protocol,
                manifest=self.suite.manifest,
                manifest_sha256=self.suite.manifest_sha256,
                items_sha256=stable_hash([item.id for item in self.items]),
                data=self.suite.data,
                spec_sha256=spec_sha256(self.suite),
            ),
            tasks=list(self.tasks),
            seed=self.options.seed,
            n=Counts(
                original=self.n_original, effective=len(self.items), failed=len(failed_items), missing=len(self.missing)
            ),
            metrics=entries,
            item_scores_sha256=item_scores_sha256,
            bootstrap={
                "resamples": defaults.BOOTSTRAP_RESAMPLES,
                "confidence": defaults.INTERVAL_CONFIDENCE,
                "seed": self.options.seed,
            },
            device=str(self.device),
            batch_size=self.options.batch_size,
            world_size=self.world.size,
            failures=failures,
            warnings=warnings,
            weights=features.backbones.weights,
            environment=environment(),
            timings=dict(self.timings),
            calls={
                "model_calls": self.model_calls,
                "feature_passes": features.passes,
                "feature_cache_hits": self.cache.hits,
                "score_cache_hits": self.scores.hits,
                "items_loaded_for_scoring": self.media.loaded,
                "corrupt_cache_files": self.cache.corrupt + self.scores.corrupt + self.store.corrupt,
            },
        )


def environment() -> dict[str, str]:
    import numpy
    import scipy

    versions = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "scipy": scipy.__version__,
    }
    return versions | {module: installed(module) for module in DISTRIBUTIONS}


def run(options: RunOptions, model: Model | None = None) -> tuple[Record, Path]:
    """Generate (resuming), then score; returns the record and the run directory."""
    job = Run(options, model)
    try:
        job.generate(keep_media=True)
        return job.score(), job.dir
    finally:
        job.media.close()
        job.world.close()
