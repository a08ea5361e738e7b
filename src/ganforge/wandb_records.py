"""Read what a wandb run wrote to its ``run-<id>.wandb`` file, offline, without the network.

wandb (>= 0.2x) no longer ships a Python reader for these files. The format: a 7-byte header
(``":W&B"``, magic 0xBEE1, version), then LevelDB-log-style 32 KiB blocks of chunks, each with a
7-byte header (CRC-32 of type+data, length, type: 1 full, 2 first, 3 middle, 4 last); a chunk
sequence carries one serialized ``wandb_internal_pb2.Record``. Checksums are verified.

``python -m ganforge.wandb_records RUN_DIR_OR_FILE`` prints the run's identity, config and history.
"""

from __future__ import annotations

import json
import struct
import sys
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32768
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


class CorruptRecord(ValueError):
    pass


def iter_records(path: str | Path) -> Iterator[Any]:
    """Every protobuf ``Record`` in a ``.wandb`` file, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, _ = HEADER.unpack_from(data, 0)
    if ident != b":W&B" or magic != 0xBEE1:
        raise CorruptRecord(f"{path} is not a wandb run file (header {ident!r}, magic {magic:#x})")
    pos, parts = HEADER.size, []
    while pos + CHUNK.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:  # block trailer padding
            pos += left
            continue
        crc, n, kind = CHUNK.unpack_from(data, pos)
        if (crc, n, kind) == (0, 0, 0):  # zero padding at the end of a block
            pos += left
            continue
        chunk = data[pos + CHUNK.size : pos + CHUNK.size + n]
        if zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != crc:
            raise CorruptRecord(f"{path}: bad checksum at byte {pos}")
        pos += CHUNK.size + n
        parts = [chunk] if kind in (FULL, FIRST) else parts + [chunk]
        if kind in (FULL, LAST):
            rec = pb.Record()
            rec.ParseFromString(b"".join(parts))
            yield rec


def _key(item: Any) -> str:
    return "/".join(item.nested_key) if item.nested_key else item.key


@dataclass
class WandbRun:
    """What reached wandb: identity, config, every history row (as logged), the final summary, files."""

    id: str = ""
    name: str = ""
    group: str = ""
    tags: list[str] = field(default_factory=list)
    project: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)  # defined metric/glob -> its step metric
    exit_code: int | None = None

    def series(self, key: str, x: str = "trainer/global_step") -> list[tuple[Any, Any]]:
        return [(row.get(x), row[key]) for row in self.history if key in row]


def read_run(path: str | Path) -> WandbRun:
    """A run from its ``.wandb`` file, or from its directory (``offline-run-...``)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*.wandb"))
        if not files:
            raise FileNotFoundError(f"no .wandb file in {path}")
        path = files[0]
    run = WandbRun()
    for rec in iter_records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            run.id, run.name, run.group, run.tags, run.project = r.run_id, r.display_name, r.run_group, list(r.tags), r.project
            run.config.update({u.key: json.loads(u.value_json) for u in r.config.update})
        elif kind == "config":
            run.config.update({_key(u): json.loads(u.value_json) for u in rec.config.update})
        elif kind == "history":
            run.history.append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            run.summary.update({_key(u): json.loads(u.value_json) for u in rec.summary.update})
        elif kind == "metric":
            m = rec.metric
            run.metrics[m.name or m.glob_name] = m.step_metric
        elif kind == "exit":
            run.exit_code = rec.exit.exit_code
    run.config.pop("_wandb", None)
    return run


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m ganforge.wandb_records RUN_DIR_OR_FILE", file=sys.stderr)
        return 2
    try:
        run = read_run(argv[0])
    except (OSError, CorruptRecord) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(json.dumps({"id": run.id, "name": run.name, "group": run.group, "tags": run.tags, "exit_code": run.exit_code}))
    print(json.dumps({"config": run.config}, default=str))
    for row in run.history:
        print(json.dumps({k: v for k, v in row.items() if not k.startswith("_")}, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
