"""`finsent compile-kubeflow`: the pipeline for Kubeflow Pipelines v2 (a
PipelineSpec YAML) and Vertex AI Pipelines (a PipelineJob JSON).

  finsent compile-kubeflow [--output FILE] [--image IMAGE]
      [--output_dir gs://BUCKET/finsent] [--data gs://BUCKET/data]
      [--split train=sent_train.csv --split eval=sent_valid.csv]
      [--trainer_cpu_limit 8 --trainer_memory_limit 32 ...]
      [--config FILE] [Trainer flags of `finsent run`] [Beam flags]

KFP v1's KubeflowDagRunner (Argo YAML) is gone from TFX 1.16:
tfx.orchestration.kubeflow.kubeflow_dag_runner does not exist, so only the
v2 spec is compiled (docs/kubeflow.md).
"""

import argparse
import dataclasses
import sys
from typing import List, Optional, Tuple

from finsent import configs
from finsent.commands import pipeline_flags
from finsent.configs import knobs

DATA_ROOT_PARAMETER = configs.DATA_ROOT_PARAMETER


def _split(value: str) -> Tuple[str, str]:
  name, sep, pattern = value.partition('=')
  if not sep or not name or not pattern:
    raise argparse.ArgumentTypeError(
        f'expected NAME=PATTERN (e.g. train=sent_train.csv), got {value!r}')
  return name, pattern


def build_parser(prog: str,
                 defaults: configs.PipelineConfig = configs.PipelineConfig()
                 ) -> argparse.ArgumentParser:
  kubeflow = configs.KubeflowConfig()
  parser = argparse.ArgumentParser(
      prog=prog, description='Compiles the finsent TFX pipeline for '
      'Kubeflow Pipelines v2 (PipelineSpec YAML) and Vertex AI Pipelines '
      '(PipelineJob JSON). Unknown --flags are passed to Beam as pipeline '
      'options.')
  parser.add_argument('--output', default=kubeflow.output_file,
                      help='the pipeline job JSON (default: %(default)s); '
                      'the PipelineSpec YAML is written beside it')
  knobs.add_config_flag(parser)
  parser.kubeflow_flags = knobs.add_flags(parser, kubeflow,
                                          only=('image', 'output_dir'))
  parser.add_argument('--data', default=kubeflow.data_root,
                      help="the data folder: the default of the spec's "
                      f"`{DATA_ROOT_PARAMETER}` parameter (default: "
                      '%(default)s)')
  parser.add_argument('--split', action='append', type=_split,
                      metavar='NAME=PATTERN',
                      help='a split of the data folder, repeated: train and '
                      'eval, or one named all to hash-split (default: ' +
                      ' '.join(f'{n}={p}' for n, p in kubeflow.data_splits) +
                      ')')
  parser.pipeline_flags = pipeline_flags.PipelineFlags(
      parser, defaults,
      top=('pipeline_name', 'serving_model_dir', 'enable_cache',
           'topic_data', 'topic_model', 'second_source', 'unlabelled'),
      top_help={'serving_model_dir': 'push destination root, which TF '
                'Serving reads (default: <output_dir>/serving_model)',
                'enable_cache': 'let Kubeflow reuse the outputs of tasks '
                'whose inputs did not change'})
  parser.resource_flags = knobs.add_flags(
      parser.add_argument_group("each Trainer's and Tuner's container"),
      kubeflow.trainer, prefix='trainer_')
  return parser


def _configs_from_args(parser, args, beam_args: List[str]
                       ) -> Tuple[configs.PipelineConfig,
                                  configs.KubeflowConfig]:
  if not args.output.endswith('.json'):
    parser.error(f'--output {args.output}: the pipeline job is JSON '
                 '(FILE.json); the PipelineSpec YAML goes beside it')
  splits = tuple(args.split or configs.KubeflowConfig().data_splits)
  names = sorted(name for name, _ in splits)
  if names not in (['eval', 'train'], ['all']):
    parser.error(f'--split: expected train and eval, or all; got '
                 f'{", ".join(names)}')
  resources = parser.resource_flags.read(args)
  if resources.accelerator_type and resources.accelerator_count < 1:
    parser.error('--trainer_accelerator_type needs '
                 '--trainer_accelerator_limit of 1 or more')
  if resources.accelerator_count and not resources.accelerator_type:
    parser.error('--trainer_accelerator_limit needs '
                 '--trainer_accelerator_type')
  kubeflow = dataclasses.replace(
      parser.kubeflow_flags.read(args), data_root=args.data,
      data_splits=splits, output_file=args.output, trainer=resources)
  # After parsing: `--help` loads no Beam.
  from finsent.data import beam_options
  try:
    beam_pipeline_args = beam_options.pipeline_args(beam_args,
                                                    image=kubeflow.image)
  except beam_options.BeamArgsError as e:
    parser.error(str(e))
  config = parser.pipeline_flags.config(
      args, data=args.data, data_splits=splits,
      schema_file=kubeflow.image_schema_file,
      output_dir=kubeflow.output_dir,
      beam_pipeline_args=tuple(beam_pipeline_args))
  if config.training.strategy == 'multi_worker_mirrored':
    parser.error('--strategy multi_worker_mirrored: each Trainer of the '
                 'compiled pipeline is one pod; `finsent render-tfjob` runs '
                 'a multi-worker Trainer on Kubernetes')
  problem = (pipeline_flags.unlabelled_problem(config) or
             pipeline_flags.cluster_problem(config))
  if problem:
    parser.error(problem)
  return config, kubeflow


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent compile-kubeflow') -> int:
  parser = knobs.parser_with_config(
      argv, configs.PipelineConfig(), lambda d: build_parser(prog, d))
  args, beam_args = parser.parse_known_args(argv)
  config, kubeflow = _configs_from_args(parser, args, beam_args)
  from finsent.kubeflow import runner
  job_file, spec_file = runner.compile_pipeline(config, kubeflow)
  print(f'Wrote {job_file} (Vertex AI PipelineJob)\n  and {spec_file} '
        f'(Kubeflow Pipelines)\n  image: {kubeflow.image}\n  pipeline root: '
        f'{config.pipeline_root}\n  {DATA_ROOT_PARAMETER} (runtime '
        f'parameter): {config.data}\n  pushes to: {config.serving_root}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
