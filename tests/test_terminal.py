"""The default verbosity's terminal, piece by piece: the component lines,
the Trainers' progress bars, and a run's flags kept from Beam's executors.
tests/e2e.py checks whole runs' output (check_quiet_terminal)."""

import io
import logging
import os
import sys

import keras
import numpy as np
import pytest
from tfx.components.statistics_gen import executor as statistics_executor
from tfx.dsl.components.base import base_beam_executor

from finsent.models import epoch_progress
from finsent.pipeline import local_runner
from finsent.pipeline import pipeline as pipeline_lib


def _record(msg, *args, level=logging.INFO, pathname='/x/tfx/launcher.py',
            created=100.0):
  record = logging.LogRecord('absl', level, pathname, 1, msg, args, None)
  record.created = created
  return record


def test_the_progress_filter_keeps_component_lines_and_errors():
  keep = local_runner._ProgressFilter()
  started = _record('Component %s is running.', 'Transform', created=100.0)
  assert keep.filter(started) and started.getMessage() == 'Transform ...'
  finished = _record('Component %s is finished.', 'Transform', created=145.25)
  assert keep.filter(finished)
  assert finished.getMessage() == 'Transform finished in 45.2 s'
  resolver = f'{pipeline_lib.BLESSED_MODEL_RESOLVER}.rnn'
  assert not keep.filter(_record('Component %s is running.', resolver))
  # Libraries' warnings are dropped, errors and finsent's own warnings kept.
  assert not keep.filter(_record('payload_format', level=logging.WARNING))
  assert keep.filter(_record('Disk full', level=logging.ERROR))
  own = sys.modules['finsent.models'].__file__
  assert keep.filter(_record('temperature at its bound',
                             level=logging.WARNING, pathname=own))
  assert not keep.filter(_record('Some INFO line'))


def test_progress_output_restores_logging_and_warnings():
  root = logging.getLogger()
  handlers = list(root.handlers)
  with local_runner.progress_output():
    assert epoch_progress.enabled()
    assert len(root.handlers) == 1
  assert not epoch_progress.enabled()
  assert root.handlers == handlers


def test_a_bar_line_per_epoch_off_a_terminal():
  stream = io.StringIO()
  bar = epoch_progress.EpochProgress('rnn', 4, 'val_loss', stream=stream)
  bar.on_train_begin()
  for epoch, loss in enumerate([0.9, 0.7, 0.8]):
    bar.on_epoch_end(epoch, {'val_loss': loss})
  bar.on_train_end()
  lines = stream.getvalue().splitlines()
  assert [line.split(']')[1].split('  ')[1] for line in lines[:3]] == [
      '1/4 epochs', '2/4 epochs', '3/4 epochs']
  assert 'val loss 0.800 (best 0.700)' in lines[2]
  assert lines[3] == 'rnn          stopped early after 3/4 epochs'
  assert '\r' not in stream.getvalue()


class _Terminal(io.StringIO):

  def isatty(self):
    return True


def test_one_row_redrawn_on_a_terminal(monkeypatch):
  monkeypatch.setattr(epoch_progress.shutil, 'get_terminal_size',
                      lambda: os.terminal_size((60, 24)))
  stream = _Terminal()
  bar = epoch_progress.EpochProgress('transformer', 2, 'val_macro_f1',
                                     stream=stream)
  bar.on_train_begin()
  bar.on_epoch_end(0, {'val_macro_f1': 0.5})
  bar.on_epoch_end(1, {'val_macro_f1': 0.6})
  bar.on_train_end()
  rows = stream.getvalue().split('\n')
  assert rows[1:] == ['']  # one row, ended once
  redraws = rows[0].split('\r\033[K')[1:]
  assert len(redraws) == 4 and redraws[-1].startswith('transformer  [###')
  assert all(len(r) <= 59 for r in redraws)


def test_the_bar_follows_a_real_fit():
  stream = io.StringIO()
  model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(3)])
  model.compile('adam', 'sparse_categorical_crossentropy',
                metrics=['sparse_categorical_accuracy'])
  x, y = np.zeros((8, 2), np.float32), np.zeros((8,), np.int64)
  model.fit(x, y, validation_data=(x, y), epochs=2, verbose=0,
            callbacks=[epoch_progress.EpochProgress(
                'transformer', 2, 'val_sparse_categorical_accuracy',
                stream=stream)])
  lines = stream.getvalue().splitlines()
  assert len(lines) == 2 and '2/2 epochs' in lines[1]
  assert 'val accuracy 1.000 (best 1.000)' in lines[1]


def test_a_run_s_flags_do_not_reach_the_beam_executors(monkeypatch):
  # TFX's Beam executors parse sys.argv with absl's flags, whose
  # --verbosity is a number: `finsent run --verbosity info` failed there.
  monkeypatch.setattr(sys, 'argv', ['finsent', 'run', '--verbosity', 'info'])
  context = base_beam_executor.BaseBeamExecutor.Context(
      beam_pipeline_args=['--direct_num_workers=1'])
  with pytest.raises(Exception, match='verbosity'):
    statistics_executor.Executor(context)
  with local_runner._argv_without_flags():
    statistics_executor.Executor(context)
  assert sys.argv[-1] == 'info'
