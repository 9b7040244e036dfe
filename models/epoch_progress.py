"""One progress bar per Trainer, advanced once per epoch.

The local pipeline's default verbosity (pipeline.local_runner) enables it;
the Trainers' run_fn runs in that same process. On a terminal the bar is
one line, redrawn in place; written to a file or a pipe it is one line per
epoch. Elsewhere (Kubeflow, `finsent train-worker`, `--verbosity info`)
it stays off and Keras writes its own per-epoch lines.
"""

import shutil
import sys
import time
from typing import Optional, TextIO

import keras

_stream: Optional[TextIO] = None
_WIDTH = 12
# The early-stopping monitors (configs.training.EARLY_STOPPING_MONITORS),
# short: a bar longer than the terminal wraps, and `\r` redraws only its
# last row.
_SHORT_NAMES = {'val_sparse_categorical_accuracy': 'val accuracy',
                'val_macro_f1': 'val macro-F1', 'val_loss': 'val loss',
                # A model with a topic head watches its sentiment head.
                'val_sentiment_sparse_categorical_accuracy':
                    'val sentiment accuracy',
                'val_sentiment_macro_f1': 'val sentiment macro-F1'}


def enable(stream: Optional[TextIO]) -> None:
  """Trainers of this process draw their bar on `stream`; None: off."""
  global _stream
  _stream = stream


def enabled() -> bool:
  return _stream is not None


class EpochProgress(keras.callbacks.Callback):
  """`rnn  [##########..............]  5/12 epochs  val macro-F1 0.580
  (best 0.580)  14 s`, for the Trainer of `name` training `epochs` epochs
  at most and watching `monitor`; at the end, why it stopped."""

  def __init__(self, name: str, epochs: int, monitor: str,
               stream: Optional[TextIO] = None):
    super().__init__()
    self._name, self._epochs, self._monitor = name, epochs, monitor
    self._stream = stream or _stream or sys.stderr
    self._tty = getattr(self._stream, 'isatty', lambda: False)()
    self._best = self._last = None
    self._done = 0
    self._started = 0.0

  def _line(self) -> str:
    filled = round(_WIDTH * self._done / max(1, self._epochs))
    metric = ('' if self._last is None else
              f'  {_SHORT_NAMES.get(self._monitor, self._monitor)} '
              f'{self._last:.3f} (best {self._best:.3f})')
    return (f'{self._name:<12} [{"#" * filled}{"." * (_WIDTH - filled)}] '
            f'{self._done:>2}/{self._epochs} epochs{metric}  '
            f'{time.monotonic() - self._started:.0f} s')

  def _write(self, text: str, end: str) -> None:
    if self._tty:  # one row, redrawn: cut to the terminal's width
      text = '\r\033[K' + text[:shutil.get_terminal_size().columns - 1]
    self._stream.write(text + end)
    self._stream.flush()

  def on_train_begin(self, logs=None):
    self._started = time.monotonic()
    if self._tty:
      self._write(self._line(), '')

  def on_epoch_end(self, epoch, logs=None):
    self._done = epoch + 1
    value = (logs or {}).get(self._monitor)
    if value is not None:
      self._last = float(value)
      better = min if self._monitor == 'val_loss' else max
      self._best = (self._last if self._best is None else
                    better(self._best, self._last))
    self._write(self._line(), '' if self._tty else '\n')

  def on_train_end(self, logs=None):
    if self._tty:
      stopped = '  (stopped early)' if self._done < self._epochs else ''
      self._write(self._line() + stopped, '\n')
    elif self._done < self._epochs:
      self._write(f'{self._name:<12} stopped early after {self._done}/'
                  f'{self._epochs} epochs', '\n')
