"""``build-records``: corpus → log-Mel segments → fold-major sharded TFRecords + manifest.

The build runs in two phases, both resumable:

1. *extract*: every utterance is decoded and turned into log-Mel frames in
   ``workers`` processes; frames are cached in ``RECORDS/.partial/frames`` (one
   ``.npy`` + sample count + CRC32C per file, fsynced, then renamed into place; a
   damaged cache is recomputed), bad files are collected with a reason.
2. *write*: folds are assigned over the usable utterances, utterances are ordered
   fold-major, and shards are written one by one under temporary names. A shard
   that already carries its final name is complete and is kept.

The manifest is written last; its presence marks a finished build. Output depends
only on the inputs and the settings, so an interrupted build finished later is
byte-identical to an uninterrupted one.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import dataclasses
import hashlib
import importlib.util
import json
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import threadpoolctl

from emotion_refinery import __version__
from emotion_refinery.data.corpora import Utterance, scan_corpus
from emotion_refinery.data.corpora.base import Skipped
from emotion_refinery.data.extraction import (
    cached_frames,
    extract_egemaps,
    extract_frames,
    extract_llds,
    extract_spectrogram,
    read_frames,
    write_feature_shard,
    write_sequence_shard,
)
from emotion_refinery.data.feature_config import FeatureConfig
from emotion_refinery.data.folds import assign_folds
from emotion_refinery.errors import EmorefineError, NothingUsableError, RecordsError
from emotion_refinery.records.manifest import MANIFEST_NAME, settings_difference
from emotion_refinery.util.overwrite import clear_folder, foreign_reason, start_over_hint, with_hint
from emotion_refinery.util.processes import cpu_count, exit_with_parent
from emotion_refinery.util.ranges import FOLDS, SEED, SEGMENT_HOP, WORKERS
from tf_records.atomic import remove_leftovers, write_json
from tf_records.schema import SCHEMA_VERSION
from tf_records.writer import shard_name

__all__ = ["BuildResult", "build_records", "SHARD_SEGMENTS", "NO_MAJORITY"]

#: ``--no-majority``: what becomes of utterances whose annotators gave no class a majority.
NO_MAJORITY = ("skip", "keep")

PARTIAL = ".partial"
SHARDS = "shards"
SHARD_SEGMENTS = 4096  # about 17 MB of float16 segments: a shuffle buffer of one shard fits in memory

Progress = Callable[[str, int, int], None]


@dataclasses.dataclass
class BuildResult:
    """What a build did: ``status`` is ``"built"``, ``"resumed"`` or ``"up-to-date"``."""

    status: str
    manifest: dict[str, Any]
    seconds: float

    @property
    def skipped(self) -> list[dict[str, str]]:
        return self.manifest["skipped"]


def _settings(corpus_name, root, manifest, features: FeatureConfig, n_folds, folds_by, seed, shard_segments,
              preset=None, sequences=None, no_majority="skip"):
    settings = {
        "schema_version": SCHEMA_VERSION,
        "preset": preset,
        "corpus": {"name": corpus_name, "root": str(root), "manifest": str(manifest) if manifest else None},
        "features": features.to_dict(),
        "folds": {"n_folds": n_folds, "by": folds_by, "seed": seed},
        "shard_segments": shard_segments,
    }
    if sequences is not None:  # absent from records without sequence shards (and from older records)
        settings["sequences"] = sequences
    if no_majority != "skip":  # absent unless kept (and from older records)
        settings["no_majority"] = no_majority
    return settings


def _cache_name(utt: Utterance) -> str:
    st = os.stat(utt.path)
    key = f"{utt.path}\0{st.st_size}\0{st.st_mtime_ns}".encode()
    return hashlib.sha1(key).hexdigest() + ".npy"


def _plan_shards(order: list[dict], n_folds: int, shard_segments: int, sequences: bool = False) -> list[dict]:
    """Split each fold's utterances (kept whole) into shards of about ``shard_segments`` segments (and, with
    ``sequences``, a sequence shard of the same utterances beside each)."""
    plan = []
    for fold in range(n_folds):
        members = [u for u in order if u["fold"] == fold]
        total = sum(u["segments"] for u in members)
        n = max(1, math.ceil(total / shard_segments))
        groups: list[list[dict]] = [[] for _ in range(n)]
        seen = 0
        for u in members:
            # An utterance goes to the shard in which its first segment falls.
            groups[min(n - 1, seen * n // max(total, 1))].append(u)
            seen += u["segments"]
        groups = [g for g in groups if g]
        for i, g in enumerate(groups):
            plan.append({
                "path": f"{SHARDS}/{shard_name('features', fold=fold, index=i, count=len(groups))}",
                "fold": fold,
                "utterances": [g[0]["index"], g[-1]["index"] + 1],
                "first_segment": g[0]["first_segment"],
                "segments": sum(u["segments"] for u in g),
            })
            if sequences:
                name = shard_name("sequences", fold=fold, index=i, count=len(groups))
                plan[-1]["sequences"] = {"path": f"{SHARDS}/{name}"}
    return plan


def build_records(
    corpus_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    corpus: str = "auto",
    manifest: str | os.PathLike | None = None,
    features: FeatureConfig = FeatureConfig(),
    n_folds: int = 10,
    folds_by: str = "label",
    seed: int = 0,
    workers: int | None = None,
    shard_segments: int = SHARD_SEGMENTS,
    progress: Progress | None = None,
    preset: str | None = None,
    sequences: str | None = None,
    no_majority: str = "skip",
    overwrite: bool = False,
) -> BuildResult:
    """Build (or finish, or confirm) a records folder.

    Args:
        corpus_dir: the corpus root folder.
        out_dir: the records folder to create or complete.
        corpus: a registered corpus name, or ``"auto"`` to detect it from file names.
        manifest: CSV manifest for ``corpus="csv"``.
        features: segment settings.
        n_folds, folds_by, seed: the cross-validation protocol (see :func:`assign_folds`).
        workers: processes for decoding and features (default: all cores; 1 = in this process).
        shard_segments: target segments per shard.
        preset: the name of the preset the settings came from; ``refine`` takes its training settings
            by default.
        sequences: also store every utterance's whole frame sequence, one example per utterance, in
            sequence shards beside the feature shards (same utterances, same order): ``"log-mel"``
            (the log-Mel frames the segments are cut from), or ``None``.
        no_majority: the corpus' unlabelled utterances (votes, no majority among the classes:
            :attr:`~emotion_refinery.data.corpora.base.Scan.unlabelled`): ``"skip"`` them with their reason, or
            ``"keep"`` them (records with ``sequences`` only) as sequence shards of their own, in the fold
            of their speaker (session) group, or a seeded fold with label-stratified folds, for
            ``mlee --train-on all``; nothing else reads them.
        progress: called as ``progress(stage, done, total)`` with stage ``"extract"`` or ``"write"``.
        overwrite: delete ``out_dir`` first if emorefine made it (records, or an interrupted build), and build
            afresh; any other folder is refused untouched (:mod:`emotion_refinery.util.overwrite`).

    Everything that can be checked without decoding the audio (the settings, the corpus, opensmile for
    ``sequences`` lld / egemaps, whether the corpus' utterances can fill ``n_folds`` folds) is checked before
    anything is written. An error once the build's settings are written says how to continue or start over.

    Raises:
        CorpusError: the corpus folder, name or manifest is unusable (nothing is written).
        RecordsError: ``out_dir`` holds other data, or records built with other settings,
            or no utterance is usable.
    """
    start = time.perf_counter()
    progress = progress or (lambda stage, done, total: None)
    FOLDS.check("n_folds", n_folds)
    SEED.check("seed", seed)
    SEGMENT_HOP.check("segment_hop", features.segment_hop)
    if workers is not None:
        WORKERS.check("workers", workers)
    if no_majority not in NO_MAJORITY:
        raise RecordsError(f"Received: no_majority={no_majority!r}; expected one of {', '.join(NO_MAJORITY)}")
    if no_majority == "keep" and sequences is None:
        raise RecordsError("Received: no_majority='keep' without sequences; the utterances without a majority "
                           "train MLEE, which reads sequence shards: expected --sequences log-mel, lld or "
                           "spectrogram as well")
    if sequences in ("lld", "egemaps") and importlib.util.find_spec("opensmile") is None:
        raise RecordsError(f"Received: sequences={sequences!r}; it needs the opensmile package, which is not "
                           "installed. Install it with: pip install 'emorefine[baseline]'")
    adapter, scan = scan_corpus(corpus_dir, corpus=corpus, manifest=manifest)
    _check_folds(scan, n_folds, folds_by, seed)  # utterances that cannot fill the folds: said before any write
    if no_majority == "skip":
        scan.skipped.extend(Skipped(u.path, reason) for u, reason in scan.unlabelled)
        scan.unlabelled = []
    root = Path(corpus_dir).resolve()
    out = Path(out_dir)
    settings = _settings(adapter.name, root, Path(manifest).resolve() if manifest else None, features,
                         n_folds, folds_by, seed, shard_segments, preset, sequences, no_majority)

    if overwrite:
        clear_folder(out, "records", inputs={"corpus_dir": corpus_dir, "manifest": manifest})
    status = _prepare_out_dir(out, settings)
    if status == "up-to-date":
        data = json.loads((out / MANIFEST_NAME).read_text())
        return BuildResult(status, data, time.perf_counter() - start)

    partial = out / PARTIAL
    (partial / "frames").mkdir(parents=True, exist_ok=True)
    write_json(partial / "settings.json", settings)

    workers = workers or cpu_count()
    try:
        with _pool(workers) as pool:
            return _build(scan, root, out, partial, settings, features, n_folds, folds_by, seed, shard_segments,
                          pool, workers, progress, status, start)
    except EmorefineError as e:
        if (partial / "settings.json").is_file():  # the folder is tied to these settings: say how to go on
            with_hint(e, start_over_hint(out, "records folder"))
        raise


def _check_folds(scan, n_folds: int, folds_by: str, seed: int) -> None:
    """Refuse folds that the corpus' labelled utterances cannot fill (more folds than utterances, speakers or
    sessions; stratified folds larger than every class), before anything is written. The build assigns folds over
    the usable utterances only, which can still fall short when files turn out unusable."""
    labelled = [u for u in scan.utterances if u.label is not None]
    if len(labelled) < 2:
        return  # no fold protocol at all: the build says what it finds (usually that nothing is usable)
    index = {c: i for i, c in enumerate(scan.classes)}
    assign_folds([index[u.label] for u in labelled], speakers=[u.speaker for u in labelled],
                 sessions=[u.session for u in labelled], n_folds=n_folds, by=folds_by, seed=seed)


def _one_blas_thread(parent: int | None = None) -> None:
    """Worker start-up: end with the parent (a killed build leaves no orphans), and one BLAS thread."""
    exit_with_parent(parent)
    # Parallelism comes from processes; a multi-threaded BLAS in each of them only
    # oversubscribes the cores (the small Mel matrix products run 2-3x slower).
    threadpoolctl.threadpool_limits(1, user_api="blas")


@contextlib.contextmanager
def _pool(workers: int, *, processes: bool = False):
    """A process pool of ``workers`` (spawned: never fork a process that may hold TensorFlow), or None for 1
    (unless ``processes``: work that must not run in this process, such as openSMILE's)."""
    if workers <= 1 and not processes:
        with threadpoolctl.threadpool_limits(1, user_api="blas"):
            yield None
        return
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                                initializer=_one_blas_thread, initargs=(os.getpid(),)) as pool:
        yield pool


def _run(pool, fn, jobs: list[tuple], stage: str, progress, done: int = 0, total: int | None = None) -> list:
    """``[fn(*job) for job in jobs]`` in the pool (or here), reporting progress as jobs finish; ordered results."""
    total = len(jobs) + done if total is None else total
    results: list[Any] = [None] * len(jobs)
    progress(stage, done, total)
    if pool is None:
        for i, job in enumerate(jobs):
            results[i] = fn(*job)
            done += 1
            progress(stage, done, total)
        return results
    futures = {pool.submit(fn, *job): i for i, job in enumerate(jobs)}
    try:
        for future in concurrent.futures.as_completed(futures):
            results[futures[future]] = future.result()
            done += 1
            progress(stage, done, total)
    except BaseException:
        for f in futures:
            f.cancel()
        raise
    return results


def _build(scan, root, out, partial, settings, features, n_folds, folds_by, seed, shard_segments, pool, workers,
           progress, status, start) -> BuildResult:
    # Phase 1: frames for every utterance, from the cache where an earlier attempt left them.
    inputs = scan.utterances + [u for u, _ in scan.unlabelled]
    results: list[Any] = [None] * len(inputs)
    jobs, slots = [], []
    for i, utt in enumerate(inputs):
        cache = partial / "frames" / _cache_name(utt)
        found = cached_frames(cache, features.to_dict()) if cache.is_file() else None  # None: missing or damaged
        if found is not None:
            results[i] = found
        else:
            jobs.append((utt.path, str(cache), features.to_dict()))
            slots.append(i)
    for i, r in zip(slots, _run(pool, extract_frames, jobs, "extract", progress,
                                 done=len(inputs) - len(jobs), total=len(inputs))):
        results[i] = r

    skipped = [{"path": s.path, "reason": s.reason} for s in scan.skipped]
    usable = []
    for utt, result in zip(inputs, results):
        if isinstance(result, str):
            skipped.append({"path": utt.path, "reason": result})
        else:
            usable.append((utt, *result))
    if not usable:
        shutil.rmtree(partial)
        if out.is_dir() and not any(out.iterdir()):
            out.rmdir()
        first = f" (first: {skipped[0]['path']}: {skipped[0]['reason']})" if skipped else ""
        raise NothingUsableError(f"No usable utterance in {root}: all {len(skipped)} inputs were skipped{first}")

    sequences = settings.get("sequences")
    if sequences in _EXTRACTORS:
        usable = _sequence_frames(sequences, usable, partial, features, skipped, progress, workers=workers)
        if not usable:
            raise NothingUsableError(f"No usable utterance in {root}: no file gave {sequences} frames")

    unlabelled = sorted((r for r in usable if r[0].label is None), key=lambda r: r[0].id)
    usable = [r for r in usable if r[0].label is not None]
    if not usable:
        raise NothingUsableError(f"No usable labelled utterance in {root}: the {len(unlabelled)} usable ones have "
                                 "no majority label")
    # Folds over usable utterances in id order, then storage order: fold-major, id within fold.
    usable.sort(key=lambda r: r[0].id)
    class_index = {c: i for i, c in enumerate(scan.classes)}
    assignment = assign_folds([class_index[u.label] for u, *_ in usable],
                              speakers=[u.speaker for u, *_ in usable], sessions=[u.session for u, *_ in usable],
                              n_folds=n_folds, by=folds_by, seed=seed)
    rows = []
    for (utt, n_samples, n_frames, *own), fold in zip(usable, assignment.folds):
        rows.append({
            "id": utt.id, "path": utt.path, "label": utt.label, "label_index": class_index[utt.label],
            "speaker": utt.speaker, "text": utt.text, "fold": int(fold), "duration": n_samples / features.sr,
            "frames": n_frames, "segments": features.n_segments(n_frames),
            "sequence_frames": own[0] if own else n_frames,
            **({"votes": utt.votes} if utt.votes else {}),
            **({"session": utt.session} if utt.session else {}),
        })
    rows.sort(key=lambda r: (r["fold"], r["id"]))
    first = 0
    for i, r in enumerate(rows):
        r["index"], r["first_segment"] = i, first
        first += r["segments"]
    cache_of = {utt.id: partial / "frames" / _cache_name(utt) for utt, *_ in usable}

    # Phase 2: shards.
    plan = _plan_shards(rows, n_folds, shard_segments, sequences=sequences is not None)
    _reconcile_plan(out, partial / "plan.json", plan)
    jobs = [(str(out / p["path"]),
             [{**r, "cache": str(cache_of[r["id"]]), "sequence_cache": f"{cache_of[r['id']]}.{sequences}"}
              for r in rows[p["utterances"][0]:p["utterances"][1]]],
             features.to_dict(), str(out / p["sequences"]["path"]) if sequences else None, sequences or "log-mel")
            for p in plan]
    written = _run(pool, write_feature_shard, jobs, "write", progress)
    shards = [{**p, "size": w["size"], "sha256": w["sha256"]} for p, w in zip(plan, written)]
    for shard, w in zip(shards, written):
        if sequences:
            shard["sequences"] = {**shard["sequences"], **w["sequences"]}
    normalization = []
    for fold in range(n_folds):
        # Summed in shard order, so the totals do not depend on which worker finished first.
        parts = [w for p, w in zip(plan, written) if p["fold"] == fold]
        normalization.append({"fold": fold, "count": int(sum(w["frames"] for w in parts)),
                              "sum": np.sum([w["sum"] for w in parts], axis=0).tolist(),
                              "sum_sq": np.sum([w["sum_sq"] for w in parts], axis=0).tolist()})

    vote_only, vote_only_shards = _vote_only(unlabelled, rows, folds_by, n_folds, seed, features, sequences,
                                             partial, out, skipped, pool, progress)

    data = {
        "schema_version": SCHEMA_VERSION,
        "emorefine_version": __version__,
        "settings": settings,
        "classes": scan.classes,
        "folds": assignment.to_dict(),
        "utterances": [{k: r[k] for k in ("index", "id", "path", "label", "label_index", "speaker", "text",
                                          "fold", "duration", "segments", "first_segment") } |
                       ({"sequence_frames": r["sequence_frames"]} if sequences else {}) |
                       ({"votes": r["votes"]} if "votes" in r else {}) |
                       ({"session": r["session"]} if "session" in r else {}) for r in rows],
        "shards": shards,
        **({"vote_only": vote_only, "vote_only_shards": vote_only_shards} if settings.get("no_majority") == "keep"
           else {}),
        "normalization": normalization,
        "skipped": sorted(skipped, key=lambda s: s["path"]),
        "warnings": list(assignment.warnings),
    }
    write_json(out / MANIFEST_NAME, data)
    shutil.rmtree(partial, ignore_errors=True)
    return BuildResult(status, data, time.perf_counter() - start)


def _vote_only(unlabelled: list[tuple], rows: list[dict], folds_by: str, n_folds: int, seed: int,
               features: FeatureConfig, sequences: str | None, partial: Path, out: Path, skipped: list[dict], pool,
               progress) -> tuple[list[dict], list[dict]]:
    """The kept unlabelled utterances (``--no-majority keep``): manifest rows, indexed after the labelled
    utterances, fold-major, each in the fold of its speaker (session) group, or with label-stratified
    folds a fold drawn from ``seed``; and one sequence shard per fold that holds any. An utterance whose
    group has no labelled utterance (so no fold) is skipped with the reason."""
    if not unlabelled:
        return [], []
    if folds_by in ("speaker", "session"):
        group_fold = {r[folds_by]: r["fold"] for r in rows}
        drawn = None
    else:
        drawn = np.random.default_rng([seed, 3]).integers(0, n_folds, len(unlabelled))
    kept = []
    for i, (utt, n_samples, n_frames, *own) in enumerate(unlabelled):
        group = getattr(utt, folds_by) if drawn is None else None
        if drawn is None and group not in group_fold:
            skipped.append({"path": utt.path, "reason": f"no majority label, and its {folds_by} {group!r} has no "
                                                        "labelled utterance, so no fold holds it"})
            continue
        kept.append({"id": utt.id, "path": utt.path, "speaker": utt.speaker, "text": utt.text,
                     "fold": int(group_fold[group] if drawn is None else drawn[i]),
                     "duration": n_samples / features.sr, "sequence_frames": own[0] if own else n_frames,
                     "votes": utt.votes or {}, **({"session": utt.session} if utt.session else {}),
                     "cache": str(partial / "frames" / _cache_name(utt))})
    kept.sort(key=lambda r: (r["fold"], r["id"]))
    for i, r in enumerate(kept):
        r["index"] = len(rows) + i
    plan = []
    for fold in sorted({r["fold"] for r in kept}):
        members = [r for r in kept if r["fold"] == fold]
        plan.append({"path": f"{SHARDS}/{shard_name('vote-only', fold=fold, index=0, count=1)}", "fold": fold,
                     "utterances": [members[0]["index"], members[-1]["index"] + 1]})
    jobs = [(str(out / p["path"]),
             [{**r, "sequence_cache": f"{r['cache']}.{sequences}"} for r in kept if r["fold"] == p["fold"]],
             features.to_dict(), sequences) for p in plan]
    written = _run(pool, write_sequence_shard, jobs, "write", progress)
    shards = [{**p, "size": w["size"], "sha256": w["sha256"]} for p, w in zip(plan, written)]
    return [{k: v for k, v in r.items() if k != "cache"} for r in kept], shards


#: ``--sequences`` kinds whose frames are computed from the audio (log-mel reuses the segments' frames).
_EXTRACTORS = {"lld": extract_llds, "spectrogram": extract_spectrogram, "egemaps": extract_egemaps}


def _sequence_frames(kind: str, usable: list[tuple], partial: Path, features: FeatureConfig, skipped: list[dict],
                     progress, *, workers: int) -> list[tuple]:
    """``--sequences lld``, ``spectrogram`` or ``egemaps``: cache every usable utterance's frames of that kind (in
    worker processes: openSMILE aborts a process that has loaded TensorFlow); return the usable entries with
    their frame count appended, and add the utterances that gave none to ``skipped``."""
    extract = _EXTRACTORS[kind]  # opensmile's presence is checked by build_records, before anything is written
    counts: list[Any] = [None] * len(usable)
    jobs, slots = [], []
    for i, (utt, *_) in enumerate(usable):
        cache = partial / "frames" / f"{_cache_name(utt)}.{kind}"
        try:
            counts[i] = len(read_frames(cache)[0]) if cache.is_file() else None
        except (OSError, ValueError, EOFError):
            cache.unlink(missing_ok=True)  # damaged: recompute
        if counts[i] is None:
            jobs.append((utt.path, str(cache), features.to_dict()))
            slots.append(i)
    with _pool(workers, processes=True) as pool:
        for i, r in zip(slots, _run(pool, extract, jobs, kind, progress, done=len(usable) - len(jobs),
                                    total=len(usable))):
            counts[i] = r
    kept = []
    for entry, n in zip(usable, counts):
        if isinstance(n, str):
            skipped.append({"path": entry[0].path, "reason": n})
        else:
            kept.append((*entry, n))
    return kept


def _prepare_out_dir(out: Path, settings: dict) -> str:
    """Decide between a fresh build, a resumed one and nothing to do; refuse foreign folders."""
    manifest = out / MANIFEST_NAME
    settings_file = out / PARTIAL / "settings.json"

    def saved(path: Path) -> dict:
        try:
            data = json.loads(path.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as e:
            data = e
        if not isinstance(data, dict):
            why = f"cannot be read: {data}" if isinstance(data, Exception) else "holds no records' settings"
            way = ("add --overwrite to delete the folder and rebuild (or choose another -o)"
                   if foreign_reason(out, "records") is None else "choose another -o")
            raise RecordsError(f"Received: output={str(out)!r}, whose {path.relative_to(out)} {why}; expected the "
                               f"file build-records wrote there: {way}")
        return data

    if manifest.is_file():
        old = saved(manifest).get("settings", {})
        if not isinstance(old, dict):
            old = {"settings": old}
        old.setdefault("preset", settings["preset"])  # records built before presets were recorded
        diff = settings_difference(old, settings)
        if diff:
            raise RecordsError(f"{out} holds records built with other settings ({'; '.join(diff)}). "
                               "Choose another output folder, or add --overwrite to delete this one and rebuild.")
        shutil.rmtree(out / PARTIAL, ignore_errors=True)
        return "up-to-date"
    if settings_file.is_file():
        old = saved(settings_file)
        diff = settings_difference(old, settings)
        if diff and settings_difference({**old, "folds": None}, {**settings, "folds": None}):
            raise RecordsError(f"{out} holds an interrupted build with other settings ({'; '.join(diff)}). "
                               "Run it again with its settings to finish it, or add --overwrite to delete it and "
                               "build with these settings.")
        if diff:  # other folds only (e.g. after folds the usable utterances could not fill): the frames still
            # serve; the shards, cut by fold, are written again
            shutil.rmtree(out / SHARDS, ignore_errors=True)
            (out / PARTIAL / "plan.json").unlink(missing_ok=True)
        remove_leftovers(out)
        return "resumed"
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RecordsError(f"Received: output={str(out)!r}; expected a new or empty folder "
                           "(it holds files that are not emorefine records)")
    return "built"


def _reconcile_plan(out: Path, plan_file: Path, plan: list[dict]) -> None:
    """Keep finished shards only if an earlier attempt planned exactly the same shards."""
    shard_dir = out / SHARDS
    if plan_file.is_file() and json.loads(plan_file.read_text()) != plan and shard_dir.exists():
        shutil.rmtree(shard_dir)
    write_json(plan_file, plan)
