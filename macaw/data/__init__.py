"""Offline data: the HDF5 buffer format, quality windows, batch sampling, task splits, Minari export."""

from macaw.data.buffer import (
    SCHEMA_VERSION,
    BufferSchemaError,
    TaskBuffer,
    compute_mc_returns,
    load_task_buffer,
    write_task_buffer,
)
from macaw.data.minari_export import export_minari, minari_dataset_id
from macaw.data.sampling import (
    Batch,
    contiguous_indices,
    uniform_indices,
)
from macaw.data.splits import SPLITS, load_split, make_split, write_split
from macaw.data.tasks import MetaBatch, TaskData, sample_meta_batch, stack_batches
from macaw.data.windows import QUALITY_WINDOWS, WINDOWS, window_episode_range, window_indices

__all__ = [
    "SCHEMA_VERSION",
    "BufferSchemaError",
    "TaskBuffer",
    "compute_mc_returns",
    "load_task_buffer",
    "write_task_buffer",
    "export_minari",
    "minari_dataset_id",
    "Batch",
    "contiguous_indices",
    "uniform_indices",
    "SPLITS",
    "load_split",
    "make_split",
    "write_split",
    "MetaBatch",
    "TaskData",
    "sample_meta_batch",
    "stack_batches",
    "QUALITY_WINDOWS",
    "WINDOWS",
    "window_episode_range",
    "window_indices",
]
