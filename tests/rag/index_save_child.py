"""Child process of the kill-during-save test (``test_index.py``): saves an index forever.

Usage: ``python index_save_child.py INDEX_PATH [stall]``. Opens the index at ``INDEX_PATH`` (it must
load cleanly), prints ``ready <count>``, then saves version after version: version ``v`` holds
ids ``0 … BASE+v-1`` with :func:`version_vectors`; after each completed save it prints
``saved <count>``. The parent SIGKILLs it at random moments. With ``stall`` the first save
stops for good right after the temp file is written and fsynced (before ``os.replace``) and
prints ``stalled``: a kill at a known point mid-save.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag.index import VectorIndex  # noqa: E402

MODEL_ID = "kill-test-model"
DIM = 384
BASE = 20_000  # 20k x 384 float32 = 30 MB per save: long enough to be killed mid-write
EXACT_MAX = 1_000_000  # stay flat: an HNSW build would dominate the loop


def version_vectors(count: int) -> np.ndarray:
    """The first ``count`` vectors every version is made of (deterministic, unit length)."""
    rng = np.random.default_rng(1234)
    vectors = rng.standard_normal((BASE + 1_000, DIM)).astype(np.float32)[:count]
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def stall_in_fsync() -> None:
    """Make the first fsync (the temp file's) announce itself and never return."""
    real_fsync = os.fsync

    def stalled(fd: Any) -> None:
        real_fsync(fd)
        print("stalled", flush=True)
        time.sleep(3600)

    os.fsync = stalled


def main() -> None:
    """Open, announce, then save growing versions until killed."""
    path = Path(sys.argv[1])
    if sys.argv[2:] == ["stall"]:
        stall_in_fsync()
    index = VectorIndex.open(path, model_id=MODEL_ID, dim=DIM, exact_max=EXACT_MAX)
    if index.stale_reason is not None:
        print(f"stale {index.stale_reason}", flush=True)
        sys.exit(1)
    vectors = version_vectors(BASE + 1_000)
    print(f"ready {len(index)}", flush=True)
    version = 0
    while True:
        count = BASE + version % 1_000
        index.rebuild(np.arange(count), vectors[:count])
        index.save()
        print(f"saved {count}", flush=True)
        version += 1


if __name__ == "__main__":
    main()
