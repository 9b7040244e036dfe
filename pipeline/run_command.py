"""`finsent run` and `finsent summary`: the pipeline's commands.

  finsent run [--data PATH] [--output_dir DIR] [flags] [Beam flags]

Flags it does not know are Beam pipeline options (`--runner=...`,
`--direct_num_workers=...`), as in Beam's own examples.
"""

import argparse
import dataclasses
import json
import logging as pylogging
import os
import sys
import time
from typing import List, Optional

from absl import logging

from components import data_gate
from data import loaders
from models import calibration
from models import preprocessing
from models import pretrained_encoder
from models import word_vectors
from models import strategy as strategy_lib
from models import trainer as trainer_lib
from pipeline import beam_runners
from pipeline import configs
from pipeline import flag_types
from pipeline import pipeline as pipeline_lib
from pipeline import summary as summary_lib
from tfx import v1 as tfx


def add_training_flags(parser: argparse.ArgumentParser,
                       defaults: configs.TrainingConfig) -> None:
  """The Trainer's flags (pipeline.configs.TrainingConfig)."""
  parser.add_argument('--strategy', choices=strategy_lib.STRATEGIES,
                      default=defaults.strategy,
                      help='tf.distribute strategy (default: %(default)s: '
                      'TPU if --tpu, multi-worker if TF_CONFIG names a '
                      'cluster, mirrored over several GPUs or --cpu_replicas '
                      '> 1, else one device)')
  parser.add_argument('--cpu_replicas', type=flag_types.positive_int,
                      default=defaults.cpu_replicas,
                      help='mirrored: split the CPU into this many logical '
                      'devices, one replica each (default: %(default)s)')
  parser.add_argument('--tpu', default=defaults.tpu,
                      help="TPU to train on: a Cloud TPU name, "
                      "grpc://host:port, or 'local' (a TPU VM)")
  parser.add_argument('--max_epochs', type=flag_types.positive_int,
                      default=defaults.max_epochs)
  parser.add_argument('--train_steps', type=flag_types.positive_int,
                      default=None,
                      help='stop each Trainer after this many batches (TFX '
                      'TrainArgs.num_steps); default: epochs until early '
                      'stopping')
  parser.add_argument('--class_weighting',
                      choices=trainer_lib.CLASS_WEIGHTINGS,
                      default=defaults.class_weighting,
                      help='loss weights against class imbalance '
                      '(default: %(default)s)')
  parser.add_argument('--early_stopping_monitor',
                      choices=trainer_lib.EARLY_STOPPING_MONITORS,
                      default=defaults.early_stopping_monitor,
                      help='held-out metric that stops training and picks '
                      'the epoch kept (default: %(default)s)')
  parser.add_argument('--learning_rate_schedule',
                      choices=trainer_lib.LEARNING_RATE_SCHEDULES,
                      default=defaults.learning_rate_schedule,
                      help='constant, or a linear warm-up over '
                      '--warmup_epochs then a cosine decay to 0 by '
                      '--max_epochs (default: %(default)s)')
  parser.add_argument('--warmup_epochs', type=flag_types.float_in(0.0),
                      default=defaults.warmup_epochs,
                      help='epochs of warm-up in warmup_cosine (default: '
                      '%(default)s)')
  parser.add_argument('--label_smoothing', type=flag_types.float_in(0.0, 1.0),
                      default=defaults.label_smoothing,
                      help='share of each target spread over all classes, '
                      'in [0, 1) (default: %(default)s)')
  parser.add_argument('--focal_gamma', type=flag_types.float_in(0.0),
                      default=defaults.focal_gamma,
                      help='focal loss exponent: weighs each class\'s term '
                      'of the cross-entropy by (1 - p)^gamma, p its '
                      'predicted probability, so examples already got right '
                      'count less; 0 is the cross-entropy (default: '
                      '%(default)s)')
  parser.add_argument('--word_vectors', type=_word_vectors,
                      default=defaults.word_vectors, metavar='PATH',
                      help='pretrained word vectors, a text file in GloVe\'s '
                      'format (or word2vec\'s or fastText\'s): the models '
                      'trained from scratch start their token embedding from '
                      'them, at their width (default: a random start)')
  parser.add_argument('--seed', type=int, default=defaults.seed,
                      help='seed of the weights\' initialisation, dropout '
                      'and the shuffling of training batches (default: '
                      '%(default)s)')
  parser.add_argument('--calibration', choices=calibration.CALIBRATIONS,
                      default=defaults.calibration,
                      help='temperature: scale the exported probabilities by '
                      'a temperature fitted on held-out examples (default: '
                      '%(default)s)')


def _word_vectors(value: str) -> str:
  """An argparse type: a word-vector text file. A remote one (scheme://)
  is read by the Trainer only."""
  if '://' in value:
    return value
  try:
    word_vectors.dimension(value)
  except word_vectors.WordVectorsError as e:
    raise argparse.ArgumentTypeError(str(e)) from None
  return value


def cluster_problem(args) -> Optional[str]:
  """Why a cluster's pods could not read the --pretrained_encoder or
  --word_vectors of `args`, files of the machine that compiles their job;
  None if they could."""
  return (pretrained_encoder.cluster_problem(args.pretrained_encoder) or
          word_vectors.cluster_problem(args.word_vectors))


def word_vectors_heads_problem(args) -> Optional[str]:
  """Why the Transformer of `finsent run`'s flags cannot start from its
  --word_vectors (word_vectors.heads_problem), found before the pipeline
  rather than in its Trainer. Not when a pretrained encoder replaces the
  Transformer or the Tuner chooses its heads."""
  if (not args.word_vectors or '://' in args.word_vectors or
      args.pretrained_encoder or args.enable_tuning):
    return None
  return word_vectors.heads_problem(
      args.word_vectors, word_vectors.dimension(args.word_vectors),
      configs.TransformerConfig().num_heads)


def _preset(value: str) -> str:
  """An argparse type: a keras-hub preset (pretrained_encoder.check_preset)."""
  try:
    return pretrained_encoder.check_preset(value)
  except pretrained_encoder.PresetError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


def add_pretrained_encoder_flag(parser: argparse.ArgumentParser,
                                defaults: configs.PreprocessingConfig) -> None:
  parser.add_argument('--pretrained_encoder', type=_preset,
                      default=defaults.pretrained_encoder, metavar='PRESET',
                      help='fine-tune this keras-hub preset\'s pretrained '
                      'encoder as the Transformer, with its own tokenizer: a '
                      'local directory; a gs://, kaggle:// or hf:// handle; '
                      'or a keras-hub preset name such as '
                      'bert_tiny_en_uncased (default: train the Transformer '
                      'from scratch)')


def add_preprocessing_flags(parser: argparse.ArgumentParser,
                            defaults: configs.PreprocessingConfig) -> None:
  """Transform's flags (pipeline.configs.PreprocessingConfig)."""
  parser.add_argument('--tokenization', choices=preprocessing.TOKENIZATIONS,
                      default=defaults.tokenization,
                      help='whole words, or WordPiece subwords learned on '
                      'Beam (default: %(default)s)')
  add_pretrained_encoder_flag(parser, defaults)


def preprocessing_config_from_args(args,
                                   defaults: configs.PreprocessingConfig
                                   ) -> configs.PreprocessingConfig:
  return dataclasses.replace(defaults, tokenization=args.tokenization,
                             pretrained_encoder=args.pretrained_encoder)


def add_tuning_flags(parser: argparse.ArgumentParser,
                     defaults: configs.TuningConfig) -> None:
  """The Tuners' flags (pipeline.configs.TuningConfig)."""
  parser.add_argument('--enable_tuning', action='store_true',
                      default=defaults.enabled,
                      help='run a TFX Tuner (keras-tuner random search) '
                      'before each Trainer, which then trains with the best '
                      'hyperparameters found')
  parser.add_argument('--tuner_max_trials', type=flag_types.positive_int,
                      default=defaults.max_trials,
                      help='trials per architecture (default: %(default)s)')
  parser.add_argument('--tuner_epochs_per_trial', type=flag_types.positive_int,
                      default=defaults.epochs_per_trial,
                      help='most epochs of one trial (default: %(default)s)')


def tuning_config_from_args(args, defaults: configs.TuningConfig
                            ) -> configs.TuningConfig:
  return dataclasses.replace(
      defaults, enabled=args.enable_tuning, max_trials=args.tuner_max_trials,
      epochs_per_trial=args.tuner_epochs_per_trial)


def training_config_from_args(args, defaults: configs.TrainingConfig
                              ) -> configs.TrainingConfig:
  return dataclasses.replace(
      defaults, strategy=args.strategy, cpu_replicas=args.cpu_replicas,
      tpu=args.tpu, max_epochs=args.max_epochs, train_steps=args.train_steps,
      class_weighting=args.class_weighting,
      calibration=args.calibration,
      early_stopping_monitor=args.early_stopping_monitor,
      learning_rate_schedule=args.learning_rate_schedule,
      warmup_epochs=args.warmup_epochs,
      label_smoothing=args.label_smoothing, focal_gamma=args.focal_gamma,
      word_vectors=args.word_vectors, seed=args.seed)


def _add_run_parser(subparsers) -> None:
  defaults = configs.PipelineConfig()
  run = subparsers.add_parser(
      'run', help='run the TFX pipeline locally (LocalDagRunner + Beam)',
      description='Runs ExampleGen -> StatisticsGen -> schema and drift '
      'checks -> DataGate -> Transform -> Trainer/Evaluator/Pusher per '
      'architecture -> ModelSelector -> production Evaluator/Pusher. '
      'Unknown --flags are passed to Beam as pipeline options.')
  run.add_argument('--data', default=defaults.data,
                   help='data file or folder (CSV, Twitter-FNS CSV, JSONL, '
                   'PhraseBank .txt); default: the bundled sample')
  run.add_argument('--output_dir', default=defaults.output_dir,
                   help='where tfx_pipeline_output/, tfx_metadata/ and '
                   'serving_model/ go (default: %(default)s)')
  run.add_argument('--pipeline_name', default=defaults.pipeline_name)
  run.add_argument('--serving_model_dir', default=None,
                   help='push destination root (default: '
                   '<output_dir>/serving_model)')
  run.add_argument('--enable_cache', action='store_true',
                   help="reuse outputs of components whose inputs did not "
                   "change (TFX's cache)")
  add_preprocessing_flags(run, defaults.preprocessing)
  add_training_flags(run, defaults.training)
  add_tuning_flags(run, defaults.tuning)
  run.add_argument('--skip_drift_check', action='store_true',
                   help='accept a deliberate change of data (a new source or '
                   'dataset): no drift check against the last accepted data, '
                   'which this data then replaces as the baseline')
  run.add_argument('--verbosity', default='progress',
                   choices=['debug', 'info', 'progress', 'warning', 'error'],
                   help='log level; progress (default): warnings and one '
                   'line per component started and finished')


def _add_summary_parser(subparsers) -> None:
  summary = subparsers.add_parser(
      'summary', help="print the summary of a pipeline's latest run",
      description='Reads the latest run of a pipeline back from its ML '
      'Metadata store and prints the end-of-run summary.')
  summary.add_argument('--output_dir',
                       default=configs.PipelineConfig().output_dir)
  summary.add_argument('--pipeline_name', default=configs.PIPELINE_NAME)
  summary.set_defaults(verbosity='warning')


def _config_from_args(args, beam_pipeline_args: List[str]
                      ) -> configs.PipelineConfig:
  defaults = configs.PipelineConfig()
  return dataclasses.replace(
      defaults,
      data=args.data,
      output_dir=args.output_dir,
      pipeline_name=args.pipeline_name,
      serving_model_dir=args.serving_model_dir,
      enable_cache=args.enable_cache,
      check_drift=not args.skip_drift_check,
      beam_pipeline_args=tuple(beam_pipeline_args),
      preprocessing=preprocessing_config_from_args(args,
                                                   defaults.preprocessing),
      training=training_config_from_args(args, defaults.training),
      tuning=tuning_config_from_args(args, defaults.tuning))


def _check_data(config: configs.PipelineConfig) -> None:
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
        f'examples of every class ({", ".join(loaders.LABELS)})')


def _prepare_strategy(training: configs.TrainingConfig) -> None:
  """Checks the Trainers' strategy can run in this process, and splits the
  CPU for a mirrored one before TensorFlow starts."""
  if strategy_lib.prepare_strategy(
      dataclasses.asdict(training)) == 'multi_worker_mirrored':
    raise strategy_lib.StrategyError(
        'the local pipeline runs its Trainers inside this one process, so '
        'it cannot be one worker of a cluster; unset TF_CONFIG, or run the '
        "workers with `finsent train-worker` (README, 'Distributed "
        "training')")


def run(config: configs.PipelineConfig) -> int:
  """Checks the data, runs the pipeline, prints and saves the summary."""
  _prepare_strategy(config.training)
  _check_data(config)
  started = time.monotonic()
  tfx.orchestration.LocalDagRunner().run(
      pipeline_lib.create_pipeline(config))
  result = summary_lib.summarize_latest_run(config)
  result.wall_seconds = round(time.monotonic() - started, 1)
  summary_path = os.path.join(config.pipeline_root, 'run_summary.json')
  with open(summary_path, 'w') as f:
    json.dump(result.to_json(), f, indent=2)
  print()
  print(summary_lib.format_summary(result))
  print(f'\n  Summary saved to {summary_path}')
  return 0


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


def _set_verbosity(verbosity: str) -> None:
  logging.set_verbosity('info' if verbosity == 'progress' else verbosity)
  if verbosity == 'progress':
    # On the logger, not a handler: TFX and Beam add handlers of their own.
    pylogging.getLogger('absl').addFilter(_ProgressFilter())


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog='finsent', description='Financial sentiment TFX pipeline.')
  subparsers = parser.add_subparsers(dest='command', required=True)
  _add_run_parser(subparsers)
  _add_summary_parser(subparsers)
  args, beam_args = parser.parse_known_args(argv)
  if args.command != 'run' and beam_args:
    parser.error(f'unrecognized arguments: {" ".join(beam_args)}')
  try:
    beam_pipeline_args = beam_runners.pipeline_args(beam_args)
  except beam_runners.BeamArgsError as e:
    parser.error(str(e))
  heads_problem = (word_vectors_heads_problem(args)
                   if args.command == 'run' else None)
  if heads_problem:
    parser.error(heads_problem)
  if configs.is_uri(args.output_dir):
    parser.error(f'--output_dir {args.output_dir}: a local run keeps ML '
                 'Metadata in SQLite there, so it must be a local folder '
                 '(`finsent compile-kubeflow` writes to object storage)')
  _set_verbosity(args.verbosity)
  try:
    if args.command == 'run':
      return run(_config_from_args(args, beam_pipeline_args))
    if args.command == 'summary':
      print(summary_lib.format_summary(summary_lib.summarize_latest_run(
          configs.PipelineConfig(output_dir=args.output_dir,
                                 pipeline_name=args.pipeline_name))))
      return 0
  except (loaders.DataFormatError, data_gate.DataValidationError,
          strategy_lib.StrategyError) as e:
    print(f'finsent: error: {e}', file=sys.stderr)
    return 2
  return 1


if __name__ == '__main__':
  sys.exit(main())
