"""`finsent train-worker`: one worker of a multi-worker Trainer.

  TF_CONFIG='{"cluster": {"worker": ["host1:port", "host2:port"]},
              "task": {"type": "worker", "index": 0}}' \\
  finsent train-worker --architecture transformer \\
      --transform_graph DIR --transformed_examples DIR \\
      --serving_model_dir DIR --model_run_dir DIR [--hyperparameters DIR]

Runs the Trainer's own `run_fn` (models.trainer) on the outputs of a
pipeline run's Transform (and, with --hyperparameters, its Tuner's best
values), with the strategy from TF_CONFIG: start one per task of the
cluster (locally, on Kubernetes, or as Vertex AI worker pools).
Only the chief writes the model and logs to the given dirs; every worker
prints its training summary as the last line of its standard output.
"""

import argparse
import dataclasses
import json
import os
import sys
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tfx import v1 as tfx
from tfx.utils import io_utils

from models import strategy as strategy_lib
from models import trainer
from pipeline import configs
from pipeline import run_command


def build_parser(prog: str) -> argparse.ArgumentParser:
  defaults = configs.TrainingConfig()
  parser = argparse.ArgumentParser(
      prog=prog, description=__doc__.split('\n\n', 2)[2],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--architecture', required=True,
                      choices=configs.ARCHITECTURES)
  parser.add_argument('--transform_graph', required=True,
                      help="Transform's transform_graph artifact dir")
  parser.add_argument('--transformed_examples', required=True,
                      help="Transform's transformed_examples artifact dir "
                      '(holding Split-train/ and Split-eval/)')
  parser.add_argument('--serving_model_dir', required=True,
                      help='where the chief exports the SavedModel')
  parser.add_argument('--model_run_dir', required=True,
                      help="where the chief writes TensorBoard logs, the "
                      'profile and the training summary')
  parser.add_argument('--hyperparameters', metavar='DIR',
                      help="the Tuner's best_hyperparameters artifact dir: "
                      "train with its values, as the pipeline's Trainer does")
  run_command.add_pretrained_encoder_flag(parser,
                                          configs.PreprocessingConfig())
  run_command.add_training_flags(parser, defaults)
  return parser


def read_tuned_hyperparameters(artifact_dir: str) -> Dict[str, Any]:
  """The Tuner's best hyperparameters (a keras-tuner HyperParameters
  config), read as TFX's Trainer reads them into `fn_args.hyperparameters`.
  Raises ValueError saying what is wrong with the artifact."""
  try:
    path = io_utils.get_only_uri_in_dir(artifact_dir)
    config = json.loads(io_utils.read_string_file(path))
  except (OSError, RuntimeError, tf.errors.OpError) as e:
    raise ValueError(f'--hyperparameters {artifact_dir}: not a Tuner\'s '
                     f'best_hyperparameters artifact: {e}') from None
  except json.JSONDecodeError as e:
    raise ValueError(f'--hyperparameters {path}: not JSON: {e}') from None
  if not isinstance(config, dict) or not isinstance(config.get('values'),
                                                    dict):
    raise ValueError(f'--hyperparameters {path}: not a keras-tuner '
                     'HyperParameters config (no "values")')
  return config


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent train-worker') -> int:
  args = build_parser(prog).parse_args(argv)
  train_files = os.path.join(args.transformed_examples, 'Split-train', '*')
  defaults = configs.PipelineConfig()
  config = dataclasses.replace(
      defaults,
      preprocessing=dataclasses.replace(
          defaults.preprocessing, pretrained_encoder=args.pretrained_encoder),
      training=run_command.training_config_from_args(args, defaults.training))
  fn_args = tfx.components.FnArgs(
      train_files=[train_files],
      eval_files=[os.path.join(args.transformed_examples, 'Split-eval', '*')],
      transform_graph_path=args.transform_graph,
      serving_model_dir=args.serving_model_dir,
      model_run_dir=args.model_run_dir,
      train_steps=args.train_steps,
      custom_config=config.trainer_custom_config(args.architecture))
  try:
    if args.hyperparameters:
      fn_args.hyperparameters = read_tuned_hyperparameters(
          args.hyperparameters)
      # Values the builder does not take are refused before training.
      trainer.tuned_settings(fn_args.custom_config, fn_args.hyperparameters)
  except ValueError as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  try:
    summary = trainer.run_fn(fn_args)
  except strategy_lib.StrategyError as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(summary))
  return 0


if __name__ == '__main__':
  sys.exit(main())
