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
import json
import sys
from typing import List, Optional

from finsent import configs
from finsent.commands import pipeline_flags
from finsent.configs import knobs


def build_parser(prog: str,
                 defaults: configs.PipelineConfig = configs.PipelineConfig()
                 ) -> argparse.ArgumentParser:
  """The parser; its `pipeline_flags` read the config back."""
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
  knobs.add_config_flag(parser)
  parser.pipeline_flags = pipeline_flags.PipelineFlags(
      parser, defaults, top=(), preprocessing=('pretrained_encoder',),
      tuning=False)
  return parser


def parse(argv: Optional[List[str]], prog: str):
  """(args, PipelineConfig) of the worker's flags and --config file."""
  parser = knobs.parser_with_config(
      argv, configs.PipelineConfig(), lambda d: build_parser(prog, d))
  args = parser.parse_args(argv)
  return args, parser.pipeline_flags.config(args)


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent train-worker') -> int:
  args, config = parse(argv, prog)
  from finsent.models import strategy
  from finsent.pipeline import train_worker
  try:
    fn_args = train_worker.fn_args(
        config, args.architecture, args.transform_graph,
        args.transformed_examples, args.serving_model_dir,
        args.model_run_dir, args.hyperparameters)
  except ValueError as e:  # the Tuner's artifact or values
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  try:
    summary = train_worker.run(fn_args)
  except strategy.StrategyError as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  print(json.dumps(summary))
  return 0


if __name__ == '__main__':
  sys.exit(main())
