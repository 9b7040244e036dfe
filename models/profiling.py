"""Captures a TensorBoard profile of a window of training steps."""

from typing import Optional

import keras
import tensorflow as tf


class StepProfiler(keras.callbacks.Callback):
  """Profiles training steps `first_step`..`last_step` (1-based, counted
  across epochs) into `log_dir`/plugins/profile, TensorBoard's layout.

  Each profiled step is wrapped in a root-level `train` trace carrying its
  step number: the profiler's converters (overview page, input pipeline
  analysis) find steps by these markers. Keras' own
  `TensorBoard(profile_batch=...)` marks steps without the root flag, so
  its profiles have no step times.

  Args:
    log_dir: where TensorBoard looks for the run (the Trainer's model_run
      dir, or a subdir of it).
    first_step: the first step profiled; later than 1 so the trace leaves
      out tf.function tracing and warm-up.
    last_step: the last step profiled (>= first_step). Training that ends
      earlier stops the profile with it.
  """

  def __init__(self, log_dir: str, first_step: int, last_step: int):
    super().__init__()
    if not 1 <= first_step <= last_step:
      raise ValueError('profile steps must satisfy 1 <= first <= last, got '
                       f'({first_step}, {last_step})')
    self.log_dir = log_dir
    self.first_step = first_step
    self.last_step = last_step
    self._step = 0
    self._profiling = False
    self._step_trace: Optional[tf.profiler.experimental.Trace] = None

  def on_train_batch_begin(self, batch, logs=None):
    self._step += 1
    if self._step == self.first_step:
      tf.profiler.experimental.start(self.log_dir)
      self._profiling = True
    if self._profiling:
      self._step_trace = tf.profiler.experimental.Trace(
          'train', step_num=self._step, _r=1)
      self._step_trace.__enter__()

  def on_train_batch_end(self, batch, logs=None):
    if self._step_trace is not None:
      self._step_trace.__exit__(None, None, None)
      self._step_trace = None
    if self._step == self.last_step:
      self._stop()

  def on_train_end(self, logs=None):
    self._stop()

  def _stop(self):
    if self._profiling:
      tf.profiler.experimental.stop()
      self._profiling = False
