"""`finsent run` and `finsent summary`: the pipeline's commands.

  finsent run [--data PATH] [--output_dir DIR] [--config FILE] [flags]
              [Beam flags]

Flags it does not know are Beam pipeline options (`--runner=...`,
`--direct_num_workers=...`), as in Beam's own examples.
"""

import argparse
import contextlib
import sys
from typing import List, Optional

from finsent import configs
from finsent.commands import pipeline_flags
from finsent.configs import knobs

VERBOSITIES = ('debug', 'info', 'progress', 'warning', 'error')


def build_parser(defaults: configs.PipelineConfig = configs.PipelineConfig()
                 ) -> argparse.ArgumentParser:
  """`finsent run` and `finsent summary`, with `defaults` as the flags'
  defaults; the run's flags are `parser.pipeline_flags`."""
  parser = argparse.ArgumentParser(
      prog='finsent', description='Financial sentiment TFX pipeline.')
  subparsers = parser.add_subparsers(dest='command', required=True)
  run = subparsers.add_parser(
      'run', help='run the TFX pipeline locally (LocalDagRunner + Beam)',
      description='Runs ExampleGen -> StatisticsGen -> schema and drift '
      'checks -> DataGate -> Transform -> Trainer/Evaluator/Pusher per '
      'candidate -> ModelSelector -> production Evaluator/Pusher '
      '[-> every candidate scored on --second_source]. With a pretrained '
      "encoder, BulkInferrer writes its probabilities into the training "
      'examples [and --unlabelled texts] once it is blessed, and students '
      'learn from them. '
      'Unknown --flags are passed to Beam as pipeline options.')
  knobs.add_config_flag(run)
  parser.pipeline_flags = pipeline_flags.PipelineFlags(run, defaults)
  run.add_argument('--verbosity', default='progress', choices=VERBOSITIES,
                   help='log level; progress (default): one line per '
                   'component started and finished, warnings, the summary')
  summary = subparsers.add_parser(
      'summary', help="print the summary of a pipeline's latest run",
      description='Reads the latest run of a pipeline back from its ML '
      'Metadata store and prints the end-of-run summary.')
  summary.add_argument('--output_dir', default=defaults.output_dir)
  summary.add_argument('--pipeline_name', default=defaults.pipeline_name)
  summary.set_defaults(verbosity='warning')
  return parser


def parse(argv: Optional[List[str]]):
  """(parser, args, the run's PipelineConfig or None) from argv; exits 2
  with argparse's message on a bad flag, Beam option or config file."""
  parser = knobs.parser_with_config(argv, configs.PipelineConfig(),
                                    build_parser)
  args, beam_args = parser.parse_known_args(argv)
  if args.command != 'run':
    if beam_args:
      parser.error(f'unrecognized arguments: {" ".join(beam_args)}')
    return parser, args, None
  # After parsing: `--help` loads no Beam.
  from finsent.data import beam_options
  try:
    beam_pipeline_args = beam_options.pipeline_args(beam_args)
  except beam_options.BeamArgsError as e:
    parser.error(str(e))
  config = parser.pipeline_flags.config(
      args, beam_pipeline_args=tuple(beam_pipeline_args))
  problem = (pipeline_flags.word_vectors_heads_problem(config) or
             pipeline_flags.unlabelled_problem(config))
  if problem:
    parser.error(problem)
  if configs.is_uri(config.output_dir):
    parser.error(f'--output_dir {config.output_dir}: a local run keeps ML '
                 'Metadata in SQLite there, so it must be a local folder '
                 '(`finsent compile-kubeflow` writes to object storage)')
  for flag in ('second_source', 'unlabelled', 'topic_data'):
    path = getattr(config, flag)
    if path and configs.is_uri(path):
      # As --data: the pre-flight check reads local files.
      parser.error(f'--{flag} {path}: a local run reads a local file or '
                   'folder (object storage is for `finsent compile-kubeflow`)')
  return parser, args, config


def main(argv: Optional[List[str]] = None) -> int:
  _, args, config = parse(argv)
  from finsent.components import data_gate
  from finsent.data import loaders
  from finsent.models import strategy
  from finsent.pipeline import local_runner
  local_runner.set_verbosity(args.verbosity)
  try:
    with (local_runner.progress_output() if args.verbosity == 'progress'
          else contextlib.nullcontext()):
      if args.command == 'run':
        local_runner.run(config)
      else:
        local_runner.print_summary(configs.PipelineConfig(
            output_dir=args.output_dir, pipeline_name=args.pipeline_name))
  except (loaders.DataFormatError, data_gate.DataValidationError,
          strategy.StrategyError) as e:
    print(f'finsent: error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
