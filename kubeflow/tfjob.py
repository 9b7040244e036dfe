"""`finsent render-tfjob`: a multi-worker Trainer on Kubernetes, as a
Kubeflow Training Operator TFJob manifest.

  finsent render-tfjob --workers 2 --image REGISTRY/finsent-pipeline:TAG \\
      --architecture transformer \\
      --transform_graph gs://B/.../Transform/transform_graph/ID \\
      --transformed_examples gs://B/.../Transform/transformed_examples/ID \\
      --serving_model_dir gs://B/finsent/multi_worker/model \\
      --model_run_dir gs://B/finsent/multi_worker/model_run > tfjob.yaml
  kubectl apply -f tfjob.yaml

The operator starts `--workers` pods of the pipeline image and sets
TF_CONFIG in each (the cluster and the pod's index). Each pod runs `finsent
train-worker` with the other flags, checked here by that command's own
parser; its `auto` strategy turns TF_CONFIG into MultiWorkerMirroredStrategy
(models.strategy). Worker 0 is the chief and alone writes the model and its
logs, so the paths must be on storage every pod reaches (gs://, s3://, a
ReadWriteMany volume).
"""

import argparse
import sys
from typing import Any, Dict, List, Optional

import yaml

from pipeline import configs
from pipeline import flag_types
from pipeline import run_command
from pipeline import train_worker

# The container name the Training Operator looks for in a TFJob.
CONTAINER_NAME = 'tensorflow'
_MULTI_WORKER_STRATEGIES = ('auto', 'multi_worker_mirrored')


def render_tfjob(worker_args: List[str], architecture: str, workers: int,
                 image: str, resources: configs.ContainerResources,
                 pipeline_name: str = configs.PIPELINE_NAME) -> Dict[str, Any]:
  """The TFJob running `finsent train-worker *worker_args` on `workers`
  pods of `image`, each with `resources` (requests = limits)."""
  limits = {'cpu': f'{resources.cpu_limit:g}',
            'memory': f'{resources.memory_limit_gb:g}G'}
  if resources.accelerator_type:
    limits[resources.accelerator_type] = str(resources.accelerator_count)
  name = f'{pipeline_name}-train-{architecture}'
  return {
      'apiVersion': 'kubeflow.org/v1',
      'kind': 'TFJob',
      'metadata': {'name': name, 'labels': {
          'app.kubernetes.io/name': name,
          'app.kubernetes.io/component': 'trainer',
          'app.kubernetes.io/part-of': pipeline_name}},
      'spec': {'tfReplicaSpecs': {'Worker': {
          'replicas': workers,
          'restartPolicy': 'OnFailure',
          'template': {'spec': {'containers': [{
              'name': CONTAINER_NAME,
              'image': image,
              'command': ['finsent', 'train-worker', *worker_args],
              'resources': {'requests': dict(limits),
                            'limits': dict(limits)},
          }]}},
      }}},
  }


def build_parser(prog: str) -> argparse.ArgumentParser:
  kubeflow = configs.KubeflowConfig()
  resources = kubeflow.trainer
  parser = argparse.ArgumentParser(
      prog=prog, usage=f'{prog} --workers N [flags] TRAIN_WORKER_FLAGS',
      description='Writes a Kubeflow Training Operator TFJob that runs '
      '`finsent train-worker` with TRAIN_WORKER_FLAGS on N pods (each with '
      'its TF_CONFIG). `finsent train-worker --help` lists those flags.')
  parser.add_argument('--workers', type=int, required=True,
                      help='pods training in step (2 or more)')
  parser.add_argument('--image', default=kubeflow.image,
                      help='the pipeline image (default: %(default)s)')
  parser.add_argument('--cpu_limit', type=flag_types.positive_float,
                      default=resources.cpu_limit,
                      help='CPUs per worker (default: %(default)g)')
  parser.add_argument('--memory_limit', type=flag_types.positive_float,
                      default=resources.memory_limit_gb,
                      help='memory per worker in GB (default: %(default)g)')
  parser.add_argument('--accelerator_type', default=None,
                      help='a Kubernetes resource name, e.g. nvidia.com/gpu')
  parser.add_argument('--accelerator_limit', type=int, default=0,
                      help='accelerators per worker')
  parser.add_argument('--output', default='-',
                      help='the manifest file (default: standard output)')
  return parser


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent render-tfjob') -> int:
  parser = build_parser(prog)
  args, worker_args = parser.parse_known_args(argv)
  if args.workers < 2:
    parser.error('--workers: a multi-worker Trainer needs 2 or more')
  if bool(args.accelerator_type) != (args.accelerator_limit > 0):
    parser.error('--accelerator_type and --accelerator_limit go together')
  if args.accelerator_type and '/' not in args.accelerator_type:
    parser.error(f'--accelerator_type {args.accelerator_type!r}: on '
                 'Kubernetes an accelerator is a resource name such as '
                 'nvidia.com/gpu')
  # train-worker's own parser: what the pods would refuse is refused here.
  worker = train_worker.build_parser(f'{prog} ... (train-worker flags)'
                                     ).parse_args(worker_args)
  problem = run_command.cluster_problem(worker)
  if problem:
    parser.error(problem)
  if worker.strategy not in _MULTI_WORKER_STRATEGIES:
    parser.error(f'--strategy {worker.strategy}: the workers of a TFJob '
                 f'train with {" or ".join(_MULTI_WORKER_STRATEGIES)}')
  resources = configs.ContainerResources(
      cpu_limit=args.cpu_limit, memory_limit_gb=args.memory_limit,
      accelerator_type=args.accelerator_type,
      accelerator_count=args.accelerator_limit)
  manifest = yaml.safe_dump(
      render_tfjob(worker_args, worker.architecture, args.workers,
                   args.image, resources), sort_keys=False)
  if args.output == '-':
    sys.stdout.write(manifest)
  else:
    with open(args.output, 'w') as f:
      f.write(manifest)
  return 0


if __name__ == '__main__':
  sys.exit(main())
