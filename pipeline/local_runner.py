"""Runs the pipeline here: TFX's LocalDagRunner, Beam on the DirectRunner
(or the runner Beam's flags name), and the end-of-run summary.

The runner is thin, as in TFX's templates: `create_pipeline` wires,
PipelineConfig holds every knob; this checks what would fail late
(the data, the strategy), runs, and saves the summary.
"""

import contextlib
import dataclasses
import glob
import json
import logging as pylogging
import os
import sys
import time
from typing import List

from absl import logging
from tfx import v1 as tfx

from finsent import configs
from finsent.configs import features
from finsent.configs import knobs
# Beam's shared models released at exit, here too (the in_memory runner).
from finsent.components import unlabelled_example_gen
from finsent.data import beam_worker  # noqa: F401  pylint: disable=unused-import
from finsent.data import loaders
from finsent.models import epoch_progress
from finsent.models import export
from finsent.models import strategy as strategy_lib
from finsent.pipeline import pipeline as pipeline_lib
from finsent.pipeline import summary as summary_lib

SUMMARY_FILE = 'run_summary.json'
# The run's settings, which `finsent run --config` reads back.
CONFIG_FILE = 'run_config.yaml'


def _describe(counts: loaders.SplitCounts) -> str:
  """'9543 records, 1442 negative, ...[, 12 with a topic (3 topics)]';
  no label counts for records that have none (topic data)."""
  text = f'{counts.records} records'
  if any(counts.labels.values()):
    text += ', ' + ', '.join(f'{n} {label}'
                             for label, n in counts.labels.items())
  if counts.topics:
    text += (f', {sum(counts.topics.values())} with a topic '
             f'({len(counts.topics)} topics)')
  return text


def _split_name(config: configs.PipelineConfig, split: str) -> str:
  """`train`, `eval`, or `all (hash-split 4:1 into train/eval)`."""
  return (f'all (hash-split {config.split_hash_buckets[0]}:'
          f'{config.split_hash_buckets[1]} into train/eval)'
          if split == 'all' else split)


def check_data(config: configs.PipelineConfig) -> loaders.InputLayout:
  """Reads all the data once before the pipeline and prints its counts.

  Bad rows, records without a sentiment label, or a class missing from the
  training data stop the run here.
  Returns the data's layout.
  """
  layout = loaders.resolve_input(config.data)
  counts = layout.counts()
  print(f'Data: {config.data}')
  for split, split_counts in counts.items():
    print(f'  {_split_name(config, split)}: {_describe(split_counts)}')
  if layout.ignored:
    print(f'  not read (in neither split): {", ".join(layout.ignored)}')
  for split, split_counts in counts.items():
    loaders.require_sentiment_labels(
        os.path.join(layout.input_base, layout.splits[split]),
        split_counts.records, split_counts.without_label)
  training_split = 'all' if 'all' in counts else 'train'
  missing = [label for label, n in counts[training_split].labels.items()
             if not n]
  if missing:
    raise loaders.DataFormatError(
        os.path.join(layout.input_base, layout.splits[training_split]), None,
        f'no records labelled {", ".join(missing)}: the models need '
        f'examples of every class ({", ".join(configs.LABELS)})')
  return layout


def _refuse_files_of_data(paths: List[str], data: loaders.InputLayout,
                          must: str) -> None:
  """Raises DataFormatError on the first of `paths` that --data reads
  already: `<path>: is also a file of --data (its <split> split): <must>
  the pipeline does not read already`."""
  data_files = {os.path.realpath(path): split
                for split, split_paths in data.files.items()
                for path in split_paths}
  for path in paths:
    split = data_files.get(os.path.realpath(path))
    if split:
      raise loaders.DataFormatError(
          path, None, f'is also a file of --data (its {split} split): '
          f'{must} the pipeline does not read already')


def check_second_source(config: configs.PipelineConfig,
                        data: loaders.InputLayout) -> None:
  """Reads the second source once before the pipeline and prints its
  counts, as check_data does the data: a path that is missing, a format
  the readers refuse, an empty file, a folder of train and eval files, or
  a file that --data reads already stop the run here, not in its last
  components."""
  layout = pipeline_lib.second_source_layout(config.second_source)
  _refuse_files_of_data(layout.files[pipeline_lib.SECOND_SOURCE], data,
                        'a second source must be data')
  counts = layout.counts()[pipeline_lib.SECOND_SOURCE]
  print(f'Second source (scored, never trained on): {config.second_source}')
  print(f'  {_describe(counts)}')
  loaders.require_sentiment_labels(
      os.path.join(layout.input_base,
                   layout.splits[pipeline_lib.SECOND_SOURCE]),
      counts.records, counts.without_label)


def check_topic_data(config: configs.PipelineConfig,
                     data: loaders.InputLayout) -> None:
  """Reads the topic data once before the pipeline and prints its counts,
  as check_data does the data: a record without a topic, a file --data
  reads already, a topic missing from the training records, or a layout
  whose splits do not match --data's (ExampleGen's train and eval) stop
  the run here."""
  layout = pipeline_lib.topic_data_layout(config.topic_data)
  _refuse_files_of_data(
      [path for paths in layout.files.values() for path in paths], data,
      'topic data must be records')
  counts = layout.counts()
  print(f'Topic data (the models learn topics from it): '
        f'{config.topic_data}')
  for split, split_counts in counts.items():
    print(f'  {_split_name(config, split)}: {_describe(split_counts)}')
    without_topic = split_counts.records - sum(split_counts.topics.values())
    if without_topic:
      raise loaders.DataFormatError(
          os.path.join(layout.input_base, layout.splits[split]), None,
          f'{without_topic} of {split_counts.records} records have no topic: '
          'every record of topic data needs one')
  training_split = 'all' if 'all' in counts else 'train'
  missing = [t for t in configs.TOPICS
             if not counts[training_split].topics.get(t)]
  if missing:
    raise loaders.DataFormatError(
        os.path.join(layout.input_base, layout.splits[training_split]), None,
        f'no records of the topic(s) {"; ".join(missing)}: the topic head '
        f'needs examples of every topic')


def check_topic_baselines(config: configs.PipelineConfig) -> None:
  """With topic data, refuses a pipeline whose gates would compare a model
  with a topic head with a baseline that has none: each Evaluator's
  baseline is the latest model it blessed (create_baseline_resolver), and
  TFMA fails on a baseline without the topic output the EvalConfig
  measures. Says which served names and how to start afresh."""
  if not config.num_topics or not os.path.exists(config.metadata_path):
    return
  store = summary_lib.open_metadata_store(config)
  latest = {}
  for blessing in store.get_artifacts_by_type(
      tfx.types.standard_artifacts.ModelBlessing.TYPE_NAME):
    blessed = blessing.custom_properties.get('blessed')
    if not blessed or blessed.int_value != 1:
      continue
    # <pipeline root>/Evaluator.<name>/blessing/<execution id>
    evaluator = os.path.basename(os.path.dirname(os.path.dirname(
        blessing.uri)))
    if evaluator not in latest or blessing.id > latest[evaluator].id:
      latest[evaluator] = blessing
  without = []
  for evaluator, blessing in sorted(latest.items()):
    model = blessing.custom_properties['current_model'].string_value
    outputs = export.signature_outputs(os.path.join(model, 'Format-Serving'))
    if features.TOPIC_PROBABILITIES_OUTPUT not in outputs:
      without.append(evaluator.split('.', 1)[-1])
  if without:
    raise loaders.DataFormatError(
        config.metadata_path, None,
        f'--topic_data: the latest models blessed for {", ".join(without)} '
        'have no topic head, and each gate compares a new model with the '
        "last one it blessed on both of the new model's outputs; train "
        'models with topics as a new pipeline (--pipeline_name NAME '
        'and its own --serving_model_dir)')


def check_unlabelled(config: configs.PipelineConfig,
                     data: loaders.InputLayout) -> None:
  """Reads the unlabelled texts once before the pipeline and prints how
  many there are: a missing path, an unreadable file or one without a text
  stop the run here. A file of --data is refused: its eval texts would
  reach the students' training through the teacher."""
  input_base, input_config, _ = unlabelled_example_gen.unlabelled_layout(
      config.unlabelled)
  files = sorted(path for split in input_config.splits
                 for path in glob.glob(os.path.join(input_base,
                                                    split.pattern)))
  _refuse_files_of_data(files, data, 'unlabelled texts must be texts')
  texts = sum(1 for path in files for _ in loaders.read_texts(path))
  print(f'Unlabelled texts (the students learn the teacher\'s '
        f'probabilities on them): {config.unlabelled}')
  print(f'  {texts} texts in {len(files)} file{"s" if len(files) > 1 else ""}')


def prepare_strategy(training: configs.TrainingConfig) -> None:
  """Checks the Trainers' strategy can run in this process, and splits the
  CPU for a mirrored one before TensorFlow starts."""
  if strategy_lib.prepare_strategy(
      dataclasses.asdict(training)) == 'multi_worker_mirrored':
    raise strategy_lib.StrategyError(
        'the local pipeline runs its Trainers inside this one process, so '
        'it cannot be one worker of a cluster; unset TF_CONFIG, or run the '
        'workers with `finsent train-worker` (docs/distributed.md)')


@contextlib.contextmanager
def _argv_without_flags():
  """sys.argv without this command's flags, which are parsed already.

  TFX's Beam executors parse `sys.argv + beam_pipeline_args` with absl's
  flags (BaseBeamExecutor.__init__); absl.logging owns `--verbosity`, an
  int, so `finsent run --verbosity info` (any explicit --verbosity)
  failed in TextExampleGen with IllegalFlagValueError.
  """
  argv = sys.argv
  sys.argv = argv[:1]
  try:
    yield
  finally:
    sys.argv = argv


def run(config: configs.PipelineConfig) -> summary_lib.RunSummary:
  """Checks the data, runs the pipeline, prints and saves the summary."""
  prepare_strategy(config.training)
  data = check_data(config)
  if config.second_source:
    check_second_source(config, data)
  if config.unlabelled:
    check_unlabelled(config, data)
  if config.topic_data:
    check_topic_data(config, data)
    check_topic_baselines(config)
  started = time.monotonic()
  with _argv_without_flags():
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
  """At the default verbosity, the one handler's filter: the LocalDagRunner's
  `Component X is running.` / `is finished.` as `X ...` / `X finished in
  N s`, errors, and the warnings of finsent's own code; not the libraries'
  warnings (TFX, Beam and its workers' relayed logs, TensorFlow, Keras and
  Python warnings, which logging.captureWarnings makes records of).
  `--verbosity info` shows them all.

  Drops two errors that are not news: the launcher's error for the drift
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
  _COMPONENT = 'Component %s is '
  # Resolvers are queries of ML Metadata, not work: their lines say nothing.
  _QUIET_NODES = (pipeline_lib.BASELINE_STATISTICS_RESOLVER,
                  pipeline_lib.BLESSED_MODEL_RESOLVER)

  def __init__(self):
    super().__init__()
    self._started = {}
    # The folders of finsent's packages (all loaded by now): warnings of
    # its own code pass.
    self._own_code = tuple(
        os.path.join(os.path.dirname(module.__file__), '')
        for name, module in list(sys.modules.items())
        if name.startswith('finsent.') and name.count('.') == 1 and
        getattr(module, '__file__', None))

  def filter(self, record: pylogging.LogRecord) -> bool:
    if str(record.msg).startswith(self._COMPONENT) and record.args:
      component = record.args[0]
      if str(component).startswith(self._QUIET_NODES):
        return False
      if record.msg.endswith('running.'):
        self._started[component] = record.created
        record.msg, record.args = '%s ...', (component,)
      else:
        seconds = record.created - self._started.pop(component,
                                                      record.created)
        record.msg, record.args = '%s finished in %.1f s', (component,
                                                            seconds)
      return True
    if record.getMessage().startswith(self._DROPPED):
      return False
    return (record.levelno >= pylogging.ERROR or
            (record.levelno >= pylogging.WARNING and
             record.pathname.startswith(self._own_code)))


def set_verbosity(verbosity: str) -> None:
  logging.set_verbosity('info' if verbosity == 'progress' else verbosity)


@contextlib.contextmanager
def progress_output():
  """The default verbosity's terminal, until the block ends: one line per
  component started and finished, one progress bar per Trainer, errors and
  finsent's own warnings (`_ProgressFilter`), then the summary."""
  root = pylogging.getLogger()
  handler = pylogging.StreamHandler(sys.stderr)
  handler.setFormatter(pylogging.Formatter('%(message)s'))
  handler.addFilter(_ProgressFilter())
  # The one handler: it replaces the `LEVEL:logger:` one that absl's first
  # log call installed (logging.basicConfig), and takes the records of
  # every logger, Python warnings' too.
  handlers, root.handlers = root.handlers, [handler]
  # TensorFlow's logger has a handler of its own when it was first used
  # before the root one was set up (it depends on the import order).
  tf_logger = pylogging.getLogger('tensorflow')
  tf_handlers, tf_logger.handlers = tf_logger.handlers, []
  pylogging.captureWarnings(True)
  # Processes started from here on (Beam workers, the model server) show
  # no Python warnings: theirs reach the terminal directly.
  python_warnings = os.environ.get('PYTHONWARNINGS')
  os.environ['PYTHONWARNINGS'] = 'ignore'
  # The Trainers (run_fn runs in this process) draw one bar each instead
  # of Keras's per-epoch lines.
  epoch_progress.enable(sys.stderr)
  try:
    yield
  finally:
    epoch_progress.enable(None)
    if python_warnings is None:
      os.environ.pop('PYTHONWARNINGS', None)
    else:
      os.environ['PYTHONWARNINGS'] = python_warnings
    pylogging.captureWarnings(False)
    tf_logger.handlers = tf_handlers
    root.handlers = handlers


def print_summary(config: configs.PipelineConfig) -> None:
  """The summary of the latest run recorded in ML Metadata."""
  print(summary_lib.format_summary(summary_lib.summarize_latest_run(config)))
