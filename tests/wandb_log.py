"""Read the history rows of an offline W&B run file (`run-<id>.wandb`).

wandb >= 0.2x no longer ships a Python reader; the file is a LevelDB-style log of
protobuf `Record`s after a 7-byte header (":W&B", magic, version), in 32 KiB blocks.
wandb's service may still be writing it after `run.finish()` returns, so a reader waits
until the file holds its run's exit record.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
WAIT_S = 60.0  # for the service to finish writing a run it has been told to finish


def records(path: Path) -> list[bytes]:
    """The file's records, once it holds the exit record (or after WAIT_S, as they are)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        out = _parse(Path(path).read_bytes(), path)
        if _has_exit(out) or time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def _has_exit(raws: list[bytes]) -> bool:
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in reversed(raws):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "exit":
            return True
    return False


def _parse(data: bytes, path: Path) -> list[bytes]:
    assert data[:4] == b":W&B", f"{path} is not a W&B run file"
    out, pos, pending = [], HEADER, b""
    while pos + HEADER <= len(data):
        left_in_block = BLOCK - pos % BLOCK
        if left_in_block < HEADER:
            pos += left_in_block
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if pos + HEADER + length > len(data):  # a record the service is still writing
            break
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            out.append(chunk)
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            out.append(pending + chunk)
        else:  # zero padding at a block's end
            pos += BLOCK - pos % BLOCK if pos % BLOCK else 0
    return out


def history(path: Path) -> list[dict[str, Any]]:
    """Each logged history row as {key: value}."""
    from wandb.proto import wandb_internal_pb2 as pb

    rows = []
    for raw in records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "history":
            rows.append(
                {
                    item.key or "/".join(item.nested_key): json.loads(item.value_json)
                    for item in rec.history.item
                }
            )
    return rows


def run_config(path: Path) -> dict[str, Any]:
    """The run's config as recorded in the file (last update wins)."""
    from wandb.proto import wandb_internal_pb2 as pb

    config: dict[str, Any] = {}
    for raw in records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        kind = rec.WhichOneof("record_type")
        updates = (
            rec.run.config.update
            if kind == "run"
            else rec.config.update
            if kind == "config"
            else []
        )
        for item in updates:
            config[item.key or "/".join(item.nested_key)] = json.loads(item.value_json)
    return config


def run_info(path: Path) -> dict[str, Any]:
    """The run record's identity: id, group, job type, name."""
    from wandb.proto import wandb_internal_pb2 as pb

    for raw in records(path):
        rec = pb.Record()
        rec.ParseFromString(raw)
        if rec.WhichOneof("record_type") == "run":
            r = rec.run
            return {
                "id": r.run_id,
                "group": r.run_group,
                "job_type": r.job_type,
                "name": r.display_name,
            }
    raise AssertionError(f"no run record in {path}")
