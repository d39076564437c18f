"""A tiny resumable job for the runner tests: squares of item ids, item 13 corrupt.

usage: python runner_job.py OUT_DIR
"""

import sys
from pathlib import Path

import numpy as np

from mmcam.data.files import BadData, write_json
from mmcam.runs.chunks import ChunkedRun, join_process_group, load_chunks, wait_for_all_ranks


def load(item: int) -> int:
    if item == 13:
        raise BadData("corrupt item")
    return item


def main() -> None:
    out = Path(sys.argv[1])
    shard = join_process_group()
    run = ChunkedRun(out, list(range(50)), chunk_size=4, shard=shard)
    for chunk in load_chunks(run, load, workers=1):
        records = [{"id": item, "square": value * value} for item, value in chunk.items]
        records += [{"id": failure["id"], "error": failure["error"]} for failure in chunk.failures]
        records.sort(key=lambda record: record["id"])
        values = np.array([value for _, value in chunk.items], dtype=np.float32)
        run.write_chunk(chunk.index, records, {"values": values})
    wait_for_all_ranks()
    if shard.is_main:
        write_json(out / "results.json", list(run.merged_records()))


if __name__ == "__main__":
    main()
