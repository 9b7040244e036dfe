"""`finsent train-worker`: one worker of a multi-worker Trainer.

  TF_CONFIG='{"cluster": {"worker": ["host1:port", "host2:port"]},
              "task": {"type": "worker", "index": 0}}' \\
  finsent train-worker --architecture transformer \\
      --transform_graph DIR --transformed_examples DIR \\
      --serving_model_dir DIR --model_run_dir DIR

Runs the Trainer's own `run_fn` (models.trainer) on the outputs of a
pipeline run's Transform, with the strategy from TF_CONFIG: start one per
task of the cluster (locally, on Kubernetes, or as Vertex AI worker pools).
Only the chief writes the model and logs to the given dirs; every worker
prints its training summary as the last line of its standard output.
"""

import argparse
import dataclasses
import json
import os
import sys
from typing import List, Optional

from tfx import v1 as tfx

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
  run_command.add_pretrained_encoder_flag(parser,
                                          configs.PreprocessingConfig())
  run_command.add_training_flags(parser, defaults)
  return parser


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
    summary = trainer.run_fn(fn_args)
  except strategy_lib.StrategyError as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(summary))
  return 0


if __name__ == '__main__':
  sys.exit(main())
