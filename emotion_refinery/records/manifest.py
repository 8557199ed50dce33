"""The records manifest: the JSON that describes a records folder and everything in it."""

from __future__ import annotations

import concurrent.futures
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from emotion_refinery.data.feature_config import FeatureConfig, sequence_layout
from emotion_refinery.errors import RecordsError
from emotion_refinery.util.processes import cpu_count
from tf_records.schema import SCHEMA_VERSION, SegmentSpec, SequenceSpec

__all__ = ["MANIFEST_NAME", "RecordsManifest", "settings_difference"]

MANIFEST_NAME = "manifest.json"


def settings_difference(old: dict, new: dict, prefix: str = "") -> list[str]:
    """Human-readable list of the keys whose values differ between two nested settings dicts."""
    diffs = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            diffs += settings_difference(a, b, f"{prefix}{key}.")
        elif a != b:
            diffs.append(f"{prefix}{key}: {a!r} → {b!r}")
    return diffs


class RecordsManifest:
    """A loaded, checked ``manifest.json`` of a records folder.

    Attributes:
        root: the records folder.
        data: the manifest as a dict (see the README's "Records layout").
    """

    def __init__(self, root: str | os.PathLike, data: dict[str, Any]):
        self.root = Path(root)
        self.data = data

    @classmethod
    def load(cls, root: str | os.PathLike) -> RecordsManifest:
        root = Path(root)
        path = root / MANIFEST_NAME
        if not path.is_file():
            interrupted = (root / ".partial").exists()
            hint = " (an interrupted build: run build-records again to finish it)" if interrupted else ""
            raise RecordsError(f"Received: records={str(root)!r}; expected a folder made by "
                               f"`emorefine build-records` holding {MANIFEST_NAME}{hint}")
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise RecordsError(f"Cannot read {path}: {e}") from e
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise RecordsError(f"Received: schema_version={version!r} in {path}; this emorefine reads "
                               f"schema version {SCHEMA_VERSION}. Rebuild the records with this version.")
        return cls(root, data)

    # --- what is stored -------------------------------------------------------------
    @property
    def classes(self) -> list[str]:
        return list(self.data["classes"])

    @property
    def features(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.data["settings"]["features"])

    @property
    def spec(self) -> SegmentSpec:
        f = self.features
        return SegmentSpec(segment_frames=f.segment_frames, n_mels=f.n_mels, dtype=f.dtype)

    @property
    def sequence_spec(self) -> SequenceSpec | None:
        """Layout of the sequence shards, or ``None`` for records built without ``--sequences``."""
        kind = self.data["settings"].get("sequences")
        if not kind:
            return None
        n_features, dtype = sequence_layout(kind, self.features)
        return SequenceSpec(n_features=n_features, dtype=dtype)

    @property
    def utterances(self) -> list[dict[str, Any]]:
        return self.data["utterances"]

    @property
    def shards(self) -> list[dict[str, Any]]:
        return self.data["shards"]

    @property
    def vote_only(self) -> list[dict[str, Any]]:
        """Utterances without a majority label (``build-records --no-majority keep``), each with ``index``
        (after the labelled utterances), ``fold``, ``votes`` and ``sequence_frames``; empty otherwise."""
        return self.data.get("vote_only", [])

    @property
    def vote_only_shards(self) -> list[dict[str, Any]]:
        """The sequence shards of :attr:`vote_only`, one per fold that holds any."""
        return self.data.get("vote_only_shards", [])

    @property
    def n_folds(self) -> int:
        return int(self.data["folds"]["n_folds"])

    @property
    def n_segments(self) -> int:
        return int(sum(s["segments"] for s in self.shards))

    def segment_table(self) -> dict[str, np.ndarray]:
        """Per-segment ``utterance``, ``label`` and ``fold`` (int64, shape ``(n_segments,)``), in global index order."""
        counts = [u["segments"] for u in self.utterances]
        return {
            "utterance": np.repeat(np.arange(len(counts)), counts),
            "label": np.repeat([u["label_index"] for u in self.utterances], counts).astype(np.int64),
            "fold": np.repeat([u["fold"] for u in self.utterances], counts).astype(np.int64),
        }

    def fold_segments(self, fold: int) -> tuple[int, int]:
        """Global index range ``[start, stop)`` of fold ``fold``'s segments (contiguous: shards are fold-major)."""
        shards = [s for s in self.shards if s["fold"] == fold]
        return shards[0]["first_segment"], shards[-1]["first_segment"] + shards[-1]["segments"]

    def shard_path(self, shard: dict[str, Any]) -> Path:
        return self.root / shard["path"]

    def utterance(self, uid: str) -> dict[str, Any]:
        for u in self.utterances:
            if u["id"] == uid:
                return u
        raise RecordsError(f"Received: utterance={uid!r}; no utterance of {self.root} has that id "
                           f"(ids look like {self.utterances[0]['id']!r})")

    def normalization(self, *, exclude_folds: tuple[int, ...] = ()) -> tuple[np.ndarray, np.ndarray]:
        """Per-band mean and variance over every stored segment frame of the folds not in ``exclude_folds``.

        Returns:
            ``(mean, variance)``, each float64 of shape ``(n_mels,)``.
        """
        stats = [s for s in self.data["normalization"] if s["fold"] not in exclude_folds]
        count = sum(s["count"] for s in stats)
        total = np.sum([s["sum"] for s in stats], axis=0)
        total_sq = np.sum([s["sum_sq"] for s in stats], axis=0)
        mean = total / count
        return mean, np.maximum(total_sq / count - mean**2, 0.0)

    def verify(self, *, progress=None) -> dict[str, list[str]]:
        """Re-read every shard (record CRCs, counts, parsing, sha256) and every count in the manifest.

        Returns:
            ``{shard path: [problems]}`` for each bad shard; empty when all is sound.
        """
        from tf_records.reader import verify_shard

        bad: dict[str, list[str]] = {}
        spec = self.spec

        sequence_spec = self.sequence_spec

        def check(shard):
            problems = verify_shard(self.shard_path(shard), count=shard["segments"], sha256=shard["sha256"],
                                    parse=spec.parse)
            if sequence_spec is not None:
                seq = shard["sequences"]
                n = shard["utterances"][1] - shard["utterances"][0]
                problems += [f"sequence shard {seq['path']}: {p}" for p in verify_shard(
                    self.root / seq["path"], count=n, sha256=seq["sha256"], parse=sequence_spec.parse)]
            return problems

        def check_vote_only(shard):
            n = shard["utterances"][1] - shard["utterances"][0]
            return verify_shard(self.root / shard["path"], count=n, sha256=shard["sha256"], parse=sequence_spec.parse)

        # TensorFlow's reading and hashlib release the GIL: threads check shards side by side.
        with concurrent.futures.ThreadPoolExecutor(cpu_count()) as pool:
            found = list(pool.map(check, self.shards))
            vote_only = list(pool.map(check_vote_only, self.vote_only_shards))
        for shard, problems in zip(self.vote_only_shards, vote_only):
            if problems:
                bad[shard["path"]] = problems
        for i, (shard, problems) in enumerate(zip(self.shards, found)):
            lo, hi = shard["utterances"]
            expected = sum(u["segments"] for u in self.utterances[lo:hi])
            if expected != shard["segments"]:
                problems.append(f"its utterances hold {expected} segments; the shard entry says {shard['segments']}")
            if problems:
                bad[shard["path"]] = problems
            if progress:
                progress("verify", i + 1, len(self.shards))
        return bad

    def read_utterance(self, uid: str) -> np.ndarray:
        """The stored segments of utterance ``uid`` as float32, shape ``(n_segments, segment_frames, n_mels)``."""
        import tensorflow as tf

        from tf_records.reader import ordered_batches
        from tf_records.schema import POSITION, SEGMENT, UTTERANCE

        u = self.utterance(uid)
        shard = next(s for s in self.shards if s["utterances"][0] <= u["index"] < s["utterances"][1])
        out = np.zeros((u["segments"], *self.spec.shape), dtype=np.float32)
        found = 0
        for batch in ordered_batches([self.shard_path(shard)], self.spec.parse):
            keep = tf.equal(batch[UTTERANCE], u["index"])
            positions = tf.boolean_mask(batch[POSITION], keep).numpy()
            out[positions] = tf.boolean_mask(batch[SEGMENT], keep).numpy()
            found += len(positions)
        if found != u["segments"]:
            raise RecordsError(f"{shard['path']} holds {found} segments of {uid!r}; the manifest says {u['segments']}")
        return out

    def summary(self) -> dict[str, Any]:
        """The figures `emorefine inspect --json` prints (``audit``:
        :func:`emotion_refinery.records.audit.leakage_audit`)."""
        from emotion_refinery.data.votes import vote_statistics
        from emotion_refinery.records.audit import leakage_audit

        classes = self.classes
        counts = {c: 0 for c in classes}
        segment_counts = {c: 0 for c in classes}
        speakers = set()
        folds: dict[int, dict[str, int]] = {}
        for u in self.utterances:
            counts[u["label"]] += 1
            segment_counts[u["label"]] += u["segments"]
            if u.get("speaker") is not None:
                speakers.add(u["speaker"])
            f = folds.setdefault(u["fold"], {"fold": u["fold"], "utterances": 0, "segments": 0})
            f["utterances"] += 1
            f["segments"] += u["segments"]
        duration = sum(u["duration"] for u in self.utterances)
        return {
            "records": str(self.root),
            "corpus": self.data["settings"]["corpus"],
            "utterances": len(self.utterances),
            "segments": self.n_segments,
            "hours": duration / 3600,
            "classes": classes,
            "class_counts": counts,
            "class_segment_counts": segment_counts,
            "speakers": len(speakers),
            "folds": [folds[k] for k in sorted(folds)],
            "protocol": self.data["folds"],
            "shards": len(self.shards),
            "bytes": int(sum(s["size"] for s in self.shards)),
            "sequences": self.data["settings"].get("sequences"),
            "sequence_bytes": int(sum(s["sequences"]["size"] for s in self.shards if "sequences" in s)),
            "features": self.data["settings"]["features"],
            "skipped": self.data["skipped"],
            "warnings": self.data.get("warnings", []),
            "audit": leakage_audit(self.utterances, self.n_folds),
            "votes": vote_statistics(self.utterances, classes),  # None without a votes column
            "vote_only": len(self.vote_only),
        }
