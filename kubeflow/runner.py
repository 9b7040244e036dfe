"""`finsent compile-kubeflow`: the pipeline for Kubeflow Pipelines v2 (a
PipelineSpec YAML) and Vertex AI Pipelines (a PipelineJob JSON).

  finsent compile-kubeflow [--output FILE] [--image IMAGE]
      [--output_dir gs://BUCKET/finsent] [--data gs://BUCKET/data]
      [--split train=sent_train.csv --split eval=sent_valid.csv]
      [--trainer_cpu_limit 8 --trainer_memory_limit 32 ...]
      [Trainer flags of `finsent run`] [Beam flags]

TFX's KubeflowV2DagRunner compiles the very `create_pipeline` that
`finsent run` runs, from pipeline.configs.KubeflowConfig and these flags.
Every task runs the pipeline image (Dockerfile), where the project is
installed, so the module paths (`models.trainer.run_fn`) import there; the
data folder is the runtime parameter `data_root`; the Trainers get the
container resources asked for. Offline: nothing is uploaded.

KFP v1's KubeflowDagRunner (Argo YAML) is gone from TFX 1.16:
tfx.orchestration.kubeflow.kubeflow_dag_runner does not exist, so only the
v2 spec is compiled (README, "Kubeflow, Vertex AI and Beam runners").
"""

import argparse
import dataclasses
import os
import sys
from typing import List, Optional, Tuple

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
import yaml

from pipeline import beam_runners
from pipeline import configs
from pipeline import flag_types
from pipeline import pipeline as pipeline_lib
from pipeline import run_command

PROJECT_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_ROOT_PARAMETER = 'data_root'
# The nodes that train models, and get ContainerResources.
TRAINING_NODE_PREFIXES = ('Trainer.', 'Tuner.')
ResourceSpec = (
    pipeline_spec_pb2.PipelineDeploymentConfig.PipelineContainerSpec
    .ResourceSpec)


def resource_spec(resources: configs.ContainerResources) -> ResourceSpec:
  """The PipelineSpec's container resources: the numeric fields older KFP
  backends read and the string ones newer backends and Vertex AI read."""
  spec = ResourceSpec(
      cpu_limit=resources.cpu_limit,
      memory_limit=resources.memory_limit_gb,
      resource_cpu_limit=f'{resources.cpu_limit:g}',
      resource_memory_limit=f'{resources.memory_limit_gb:g}G')
  if resources.accelerator_type:
    spec.accelerator.type = resources.accelerator_type
    spec.accelerator.count = resources.accelerator_count
    spec.accelerator.resource_type = resources.accelerator_type
    spec.accelerator.resource_count = str(resources.accelerator_count)
  return spec


def image_path(kubeflow: configs.KubeflowConfig, project_file: str) -> str:
  """Where a file of this project is inside the pipeline image."""
  return os.path.join(kubeflow.image_project_dir,
                      os.path.relpath(project_file, PROJECT_DIR))


def create_kubeflow_pipeline(config: configs.PipelineConfig,
                             kubeflow: configs.KubeflowConfig
                             ) -> tfx.dsl.Pipeline:
  """`create_pipeline(config)` with the data folder as a runtime parameter
  and the Trainers' and Tuners' container resources."""
  data_root = tfx.dsl.experimental.RuntimeParameter(
      name=DATA_ROOT_PARAMETER, ptype=str, default=config.data)
  pipeline = pipeline_lib.create_pipeline(config, data_root=data_root)
  for node in pipeline.components:
    if node.id.startswith(TRAINING_NODE_PREFIXES):
      node.with_platform_config(resource_spec(kubeflow.trainer))
  return pipeline


def compile_pipeline(config: configs.PipelineConfig,
                     kubeflow: configs.KubeflowConfig) -> Tuple[str, str]:
  """Writes the pipeline job JSON to kubeflow.output_file and its
  PipelineSpec alone beside it (.yaml); returns both paths.

  The JSON is TFX's output, a Vertex AI PipelineJob template (the spec, the
  pipeline root and the parameters' values); the Kubeflow Pipelines client
  uploads a PipelineSpec YAML instead, and takes the root and the
  parameters when a run is created.
  """
  output_file = os.path.abspath(kubeflow.output_file)
  os.makedirs(os.path.dirname(output_file), exist_ok=True)
  runner = tfx.orchestration.experimental.KubeflowV2DagRunner(
      config=tfx.orchestration.experimental.KubeflowV2DagRunnerConfig(
          default_image=kubeflow.image, use_pipeline_spec_2_1=True),
      output_dir=os.path.dirname(output_file),
      output_filename=os.path.basename(output_file))
  job = runner.run(create_kubeflow_pipeline(config, kubeflow),
                   parameter_values={DATA_ROOT_PARAMETER: config.data},
                   write_out=True)
  spec_file = os.path.splitext(output_file)[0] + '.yaml'
  with open(spec_file, 'w') as f:
    yaml.safe_dump(job['pipelineSpec'], f, sort_keys=False)
  return output_file, spec_file


def _split(value: str):
  name, sep, pattern = value.partition('=')
  if not sep or not name or not pattern:
    raise argparse.ArgumentTypeError(
        f'expected NAME=PATTERN (e.g. train=sent_train.csv), got {value!r}')
  return name, pattern


def build_parser(prog: str) -> argparse.ArgumentParser:
  kubeflow = configs.KubeflowConfig()
  parser = argparse.ArgumentParser(
      prog=prog, description='Compiles the finsent TFX pipeline for '
      'Kubeflow Pipelines v2 (PipelineSpec YAML) and Vertex AI Pipelines '
      '(PipelineJob JSON). Unknown --flags are passed to Beam as pipeline '
      'options.')
  parser.add_argument('--output', default=kubeflow.output_file,
                      help='the pipeline job JSON (default: %(default)s); '
                      'the PipelineSpec YAML is written beside it')
  parser.add_argument('--image', default=kubeflow.image,
                      help='the pipeline image every task runs, as the '
                      'cluster pulls it (default: %(default)s)')
  parser.add_argument('--output_dir', default=kubeflow.output_dir,
                      help='object storage for pipeline outputs and pushed '
                      'models (default: %(default)s)')
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
  parser.add_argument('--pipeline_name', default=configs.PIPELINE_NAME)
  parser.add_argument('--serving_model_dir', default=None,
                      help='push destination root, which TF Serving reads '
                      '(default: <output_dir>/serving_model)')
  parser.add_argument('--enable_cache', action='store_true',
                      help="let Kubeflow reuse the outputs of tasks whose "
                      "inputs did not change")
  resources = kubeflow.trainer
  parser.add_argument('--trainer_cpu_limit', type=flag_types.positive_float,
                      default=resources.cpu_limit,
                      help='CPUs of each Trainer and Tuner (default: '
                      '%(default)g)')
  parser.add_argument('--trainer_memory_limit',
                      type=flag_types.positive_float,
                      default=resources.memory_limit_gb,
                      help='memory of each Trainer and Tuner in GB (default: '
                      '%(default)g)')
  parser.add_argument('--trainer_accelerator_type',
                      default=resources.accelerator_type,
                      help='e.g. NVIDIA_TESLA_T4 (Vertex AI) or '
                      'nvidia.com/gpu (Kubeflow)')
  parser.add_argument('--trainer_accelerator_limit', type=int,
                      default=resources.accelerator_count,
                      help='accelerators per Trainer and Tuner (with '
                      '--trainer_accelerator_type)')
  run_command.add_preprocessing_flags(parser, configs.PreprocessingConfig())
  run_command.add_training_flags(parser, configs.TrainingConfig())
  run_command.add_tuning_flags(parser, configs.TuningConfig())
  return parser


def _configs_from_args(parser, args, beam_args: List[str]):
  if not args.output.endswith('.json'):
    parser.error(f'--output {args.output}: the pipeline job is JSON '
                 '(FILE.json); the PipelineSpec YAML goes beside it')
  splits = tuple(args.split or configs.KubeflowConfig().data_splits)
  names = sorted(name for name, _ in splits)
  if names not in (['eval', 'train'], ['all']):
    parser.error(f'--split: expected train and eval, or all; got '
                 f'{", ".join(names)}')
  if args.strategy == 'multi_worker_mirrored':
    parser.error('--strategy multi_worker_mirrored: each Trainer of the '
                 'compiled pipeline is one pod; `finsent render-tfjob` runs '
                 'a multi-worker Trainer on Kubernetes')
  problem = run_command.cluster_problem(args)
  if problem:
    parser.error(problem)
  if args.trainer_accelerator_type and args.trainer_accelerator_limit < 1:
    parser.error('--trainer_accelerator_type needs '
                 '--trainer_accelerator_limit of 1 or more')
  if args.trainer_accelerator_limit and not args.trainer_accelerator_type:
    parser.error('--trainer_accelerator_limit needs '
                 '--trainer_accelerator_type')
  try:
    beam_pipeline_args = beam_runners.pipeline_args(beam_args,
                                                    image=args.image)
  except beam_runners.BeamArgsError as e:
    parser.error(str(e))
  kubeflow = configs.KubeflowConfig(
      image=args.image, output_dir=args.output_dir, data_root=args.data,
      data_splits=splits, output_file=args.output,
      trainer=configs.ContainerResources(
          cpu_limit=args.trainer_cpu_limit,
          memory_limit_gb=args.trainer_memory_limit,
          accelerator_type=args.trainer_accelerator_type,
          accelerator_count=args.trainer_accelerator_limit))
  defaults = configs.PipelineConfig()
  config = dataclasses.replace(
      defaults, data=args.data, data_splits=splits,
      schema_file=image_path(kubeflow, configs.SCHEMA_FILE),
      output_dir=args.output_dir, pipeline_name=args.pipeline_name,
      serving_model_dir=args.serving_model_dir,
      enable_cache=args.enable_cache,
      beam_pipeline_args=tuple(beam_pipeline_args),
      preprocessing=run_command.preprocessing_config_from_args(
          args, defaults.preprocessing),
      training=run_command.training_config_from_args(args,
                                                     defaults.training),
      tuning=run_command.tuning_config_from_args(args, defaults.tuning))
  return config, kubeflow


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent compile-kubeflow') -> int:
  parser = build_parser(prog)
  args, beam_args = parser.parse_known_args(argv)
  config, kubeflow = _configs_from_args(parser, args, beam_args)
  job_file, spec_file = compile_pipeline(config, kubeflow)
  print(f'Wrote {job_file} (Vertex AI PipelineJob)\n  and {spec_file} '
        f'(Kubeflow Pipelines)\n  image: {kubeflow.image}\n  pipeline root: '
        f'{config.pipeline_root}\n  {DATA_ROOT_PARAMETER} (runtime '
        f'parameter): {config.data}\n  pushes to: {config.serving_root}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
