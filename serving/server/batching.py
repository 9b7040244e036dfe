"""Server-side batching: concurrent requests merged into one session run.

What TF Serving's `--enable_batching` does with its BatchingParameters:
requests for the same model version, signature and outputs, whose inputs
agree beyond the batch dimension, wait up to `batch_timeout_micros` in a
queue; a batch closes when it reaches `max_batch_size` or its oldest
request times out, and one of `num_batch_threads` threads runs it as a
single call, then splits the outputs along dimension 0. A queue holding
`max_enqueued_batches` batches refuses more work (UNAVAILABLE, 503), and a
request larger than a batch is refused (INVALID_ARGUMENT).
"""

import collections
import concurrent.futures
import dataclasses
import math
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence

import grpc
import numpy as np

from finsent.serving.server.errors import ServingError
from finsent.serving.server.model_manager import LoadedVersion


@dataclasses.dataclass
class _Task:
  inputs: Dict[str, np.ndarray]
  size: int
  enqueued_at: float
  future: concurrent.futures.Future


def batch_size_of(inputs: Dict[str, np.ndarray]) -> int:
  """The common 0th dimension of a request's inputs."""
  sizes = set()
  for alias, value in inputs.items():
    if value.ndim == 0:
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f'Batching Run() input tensors must be at least rank 1: {alias} '
          f'is a scalar')
    sizes.add(value.shape[0])
  if len(sizes) != 1:
    raise ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        'Batching Run() input tensors must have equal 0th-dimension size, '
        f'got {sorted(sizes)}')
  return sizes.pop()


class BatchScheduler:
  """Queues requests per (version, signature, outputs, input shapes)."""

  def __init__(self, max_batch_size: int, batch_timeout_micros: int,
               max_enqueued_batches: int, num_batch_threads: int,
               on_batch: Optional[Callable[[str, int], None]] = None):
    """`on_batch(model_name, size)` is told of every batch run (metrics)."""
    self.max_batch_size = max_batch_size
    self._timeout = batch_timeout_micros / 1e6
    self._max_enqueued_batches = max_enqueued_batches
    self._on_batch = on_batch
    self._cond = threading.Condition()
    self._queues: Dict[tuple, collections.deque] = {}
    self._queued: Dict[tuple, int] = {}
    self._stopped = False
    self._threads = [
        threading.Thread(target=self._run_batches, daemon=True,
                         name=f'batch-thread-{i}')
        for i in range(num_batch_threads)]
    for thread in self._threads:
      thread.start()

  def submit(self, loaded: LoadedVersion, signature_name: str,
             inputs: Dict[str, np.ndarray],
             output_filter: Sequence[str] = ()) -> concurrent.futures.Future:
    """Schedules `loaded.run(signature_name, inputs, output_filter)`."""
    size = batch_size_of(inputs)
    if size > self.max_batch_size:
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f'Task size {size} is larger than maximum input batch size '
          f'{self.max_batch_size}')
    key = (loaded, signature_name, tuple(output_filter),
           tuple(sorted((alias, value.dtype.str, value.shape[1:])
                        for alias, value in inputs.items())))
    task = _Task(inputs, size, time.monotonic(), concurrent.futures.Future())
    with self._cond:
      queued = self._queued.get(key, 0)
      if (math.ceil((queued + size) / self.max_batch_size) >
          self._max_enqueued_batches):
        raise ServingError(
            grpc.StatusCode.UNAVAILABLE,
            'The batch scheduling queue to which this task was submitted '
            'is full')
      self._queues.setdefault(key, collections.deque()).append(task)
      self._queued[key] = queued + size
      self._cond.notify()
    return task.future

  def _next_batch(self):
    """Under the lock: a (key, tasks) ready to run, or the wait until one
    may be."""
    now = time.monotonic()
    wait = None
    for key, queue in self._queues.items():
      waited = now - queue[0].enqueued_at
      if self._queued[key] >= self.max_batch_size or waited >= self._timeout:
        tasks, size = [], 0
        while queue and size + queue[0].size <= self.max_batch_size:
          task = queue.popleft()
          tasks.append(task)
          size += task.size
        self._queued[key] -= size
        if not queue:
          del self._queues[key], self._queued[key]
        return (key, tasks), None
      remaining = self._timeout - waited
      wait = remaining if wait is None else min(wait, remaining)
    return None, wait

  def _run_batches(self) -> None:
    while True:
      with self._cond:
        batch, wait = self._next_batch()
        while batch is None:
          if self._stopped:
            return
          self._cond.wait(wait)
          batch, wait = self._next_batch()
      self._run(*batch)

  def _run(self, key: tuple, tasks: List[_Task]) -> None:
    loaded, signature_name, output_filter, _ = key
    try:
      merged = {alias: np.concatenate([t.inputs[alias] for t in tasks])
                for alias in tasks[0].inputs}
      total = sum(t.size for t in tasks)
      if self._on_batch is not None:
        self._on_batch(loaded.name, total)
      outputs = loaded.run(signature_name, merged, output_filter)
      for alias, value in outputs.items():
        if value.ndim == 0 or value.shape[0] != total:
          raise ServingError(
              grpc.StatusCode.FAILED_PRECONDITION,
              f'Batched output tensor {alias} has 0th dimension '
              f'{value.shape[:1]}, not the batch size {total}')
    except Exception as e:  # pylint: disable=broad-except
      # Every request of the batch gets the error; the thread lives on.
      for task in tasks:
        task.future.set_exception(e)
      return
    start = 0
    for task in tasks:
      task.future.set_result({alias: value[start:start + task.size]
                              for alias, value in outputs.items()})
      start += task.size

  def stop(self) -> None:
    with self._cond:
      self._stopped = True
      self._cond.notify_all()
    for thread in self._threads:
      thread.join()
