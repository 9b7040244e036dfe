"""Runs the pipeline here: TFX's LocalDagRunner, Beam on the DirectRunner
(or the runner Beam's flags name), and the end-of-run summary.

The runner is thin, as in TFX's templates: `create_pipeline` wires,
PipelineConfig holds every knob; this checks what would fail late
(the data, the strategy), runs, and saves the summary.
"""

import dataclasses
import json
import logging as pylogging
import os
import time

from absl import logging
from tfx import v1 as tfx

from finsent import configs
from finsent.configs import knobs
from finsent.data import loaders
from finsent.models import strategy as strategy_lib
from finsent.pipeline import pipeline as pipeline_lib
from finsent.pipeline import summary as summary_lib

SUMMARY_FILE = 'run_summary.json'
# The run's settings, which `finsent run --config` reads back.
CONFIG_FILE = 'run_config.yaml'


def check_data(config: configs.PipelineConfig) -> None:
  """Reads all the data once before the pipeline and prints its counts.

  Bad rows, or a class missing from the training data, stop the run here.
  """
  layout = loaders.resolve_input(config.data)
  counts = layout.label_counts()
  print(f'Data: {config.data}')
  for split, by_label in counts.items():
    name = (f'all (hash-split {config.split_hash_buckets[0]}:'
            f'{config.split_hash_buckets[1]} into train/eval)'
            if split == 'all' else split)
    print(f'  {name}: {sum(by_label.values())} records, ' + ', '.join(
        f'{n} {label}' for label, n in by_label.items()))
  if layout.ignored:
    print(f'  not read (in neither split): {", ".join(layout.ignored)}')
  training_split = 'all' if 'all' in counts else 'train'
  missing = [label for label, n in counts[training_split].items() if not n]
  if missing:
    raise loaders.DataFormatError(
        os.path.join(layout.input_base, layout.splits[training_split]), None,
        f'no records labelled {", ".join(missing)}: the models need '
        f'examples of every class ({", ".join(configs.LABELS)})')


def prepare_strategy(training: configs.TrainingConfig) -> None:
  """Checks the Trainers' strategy can run in this process, and splits the
  CPU for a mirrored one before TensorFlow starts."""
  if strategy_lib.prepare_strategy(
      dataclasses.asdict(training)) == 'multi_worker_mirrored':
    raise strategy_lib.StrategyError(
        'the local pipeline runs its Trainers inside this one process, so '
        'it cannot be one worker of a cluster; unset TF_CONFIG, or run the '
        'workers with `finsent train-worker` (docs/distributed.md)')


def run(config: configs.PipelineConfig) -> summary_lib.RunSummary:
  """Checks the data, runs the pipeline, prints and saves the summary."""
  prepare_strategy(config.training)
  check_data(config)
  started = time.monotonic()
  tfx.orchestration.LocalDagRunner().run(
      pipeline_lib.create_pipeline(config))
  result = summary_lib.summarize_latest_run(config)
  result.wall_seconds = round(time.monotonic() - started, 1)
  summary_path = os.path.join(config.pipeline_root, SUMMARY_FILE)
  with open(summary_path, 'w') as f:
    json.dump(result.to_json(), f, indent=2)
  with open(os.path.join(config.pipeline_root, CONFIG_FILE), 'w') as f:
    f.write(knobs.dump(config))
  print()
  print(summary_lib.format_summary(result))
  print(f'\n  Summary saved to {summary_path}')
  return result


class _ProgressFilter(pylogging.Filter):
  """Passes warnings and the LocalDagRunner's per-component progress.

  Drops two messages that are not news: the launcher's error for the drift
  baseline's resolver finding nothing (every pipeline's first run; the
  drift check then records that it had no baseline), and TFX 1.16's input
  resolver warning that it ignores a property predicate: it tests the
  predicate message for truth, which an empty message is, so it warns on
  queries that have none.
  """
  _DROPPED = (
      f'[{pipeline_lib.BASELINE_STATISTICS_RESOLVER}] Input resolution',
      'ArtifactQuery.property_predicate is not supported',
  )

  def filter(self, record: pylogging.LogRecord) -> bool:
    if record.getMessage().startswith(self._DROPPED):
      return False
    return (record.levelno >= pylogging.WARNING or
            str(record.msg).startswith('Component %s is '))


def set_verbosity(verbosity: str) -> None:
  logging.set_verbosity('info' if verbosity == 'progress' else verbosity)
  if verbosity == 'progress':
    # On the logger, not a handler: TFX and Beam add handlers of their own.
    pylogging.getLogger('absl').addFilter(_ProgressFilter())


def print_summary(config: configs.PipelineConfig) -> None:
  """The summary of the latest run recorded in ML Metadata."""
  print(summary_lib.format_summary(summary_lib.summarize_latest_run(config)))
