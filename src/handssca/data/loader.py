"""DataLoaders for every loop (training, validation, evaluation, the demo): workers that start clean
and end with the process that made them."""

from __future__ import annotations

import functools
import os
import threading
import time

import numpy as np
import torch
from torch.utils.data import DataLoader


def _exit_when_gone(pid: int, every_s: float = 1.0) -> None:
    """Watchdog thread of a worker: end this process once process ``pid`` (the trainer) is gone.

    Workers start from the forkserver, so they are not the trainer's children and a killed trainer
    (SIGKILL, OOM killer) would leave them, and the forkserver, running."""
    while True:
        time.sleep(every_s)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            os._exit(0)
        except PermissionError:  # the pid was reused by another user's process: ours is gone
            os._exit(0)


def _worker_init(parent_pid: int, worker_id: int) -> None:
    from handssca.allocator import tune_malloc

    tune_malloc()
    info = torch.utils.data.get_worker_info()
    np.random.seed((info.seed if info else worker_id) % 2**32)
    torch.set_num_threads(1)
    threading.Thread(target=_exit_when_gone, args=(parent_pid,), daemon=True, name="handssca-parent-watch").start()


def make_loader(dataset, batch_size: int, sampler=None, workers: int = 0, shuffle: bool = False) -> DataLoader:
    """A DataLoader whose workers start from a clean process (forkserver): a worker forked from a
    process that holds a GL context (the synthetic renderer, overlays) hangs in Mesa. Workers exit
    by themselves within a second when the process that made the loader dies."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        shuffle=shuffle if sampler is None else False,
        num_workers=workers,
        worker_init_fn=functools.partial(_worker_init, os.getpid()) if workers else None,
        multiprocessing_context=worker_context() if workers else None,
        persistent_workers=False,
        drop_last=False,
    )


def worker_context() -> str:
    """The multiprocessing start method for DataLoader workers: forkserver where it exists, else spawn."""
    import multiprocessing

    return "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
