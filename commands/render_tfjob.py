"""`finsent render-tfjob`: a multi-worker Trainer on Kubernetes, as a
Kubeflow Training Operator TFJob manifest.

  finsent render-tfjob --workers 2 --image REGISTRY/finsent-pipeline:TAG \\
      --architecture transformer \\
      --transform_graph gs://B/.../Transform/transform_graph/ID \\
      --transformed_examples gs://B/.../Transform/transformed_examples/ID \\
      --serving_model_dir gs://B/finsent/multi_worker/model \\
      --model_run_dir gs://B/finsent/multi_worker/model_run > tfjob.yaml
  kubectl apply -f tfjob.yaml

Each pod runs `finsent train-worker` with the other flags, checked here by
that command's own parser (kubeflow/tfjob.py says how the pods train).
"""

import argparse
import dataclasses
import sys
from typing import List, Optional

import yaml

from finsent import configs
from finsent.commands import pipeline_flags
from finsent.commands import train_worker
from finsent.configs import knobs
from finsent.kubeflow import tfjob

_MULTI_WORKER_STRATEGIES = ('auto', 'multi_worker_mirrored')


def build_parser(prog: str) -> argparse.ArgumentParser:
  kubeflow = configs.KubeflowConfig()
  parser = argparse.ArgumentParser(
      prog=prog, usage=f'{prog} --workers N [flags] TRAIN_WORKER_FLAGS',
      description='Writes a Kubeflow Training Operator TFJob that runs '
      '`finsent train-worker` with TRAIN_WORKER_FLAGS on N pods (each with '
      'its TF_CONFIG). `finsent train-worker --help` lists those flags.')
  parser.add_argument('--workers', type=int, required=True,
                      help='pods training in step (2 or more)')
  parser.add_argument('--image', default=kubeflow.image,
                      help='the pipeline image (default: %(default)s)')
  parser.resource_flags = knobs.add_flags(
      parser.add_argument_group("each worker's container"),
      dataclasses.replace(kubeflow.trainer, accelerator_count=0),
      help={'accelerator_type': 'a Kubernetes resource name, e.g. '
            'nvidia.com/gpu'})
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
  worker, worker_config = train_worker.parse(
      worker_args, f'{prog} ... (train-worker flags)')
  problem = pipeline_flags.cluster_problem(worker_config)
  if problem:
    parser.error(problem)
  strategy = worker_config.training.strategy
  if strategy not in _MULTI_WORKER_STRATEGIES:
    parser.error(f'--strategy {strategy}: the workers of a TFJob '
                 f'train with {" or ".join(_MULTI_WORKER_STRATEGIES)}')
  resources = parser.resource_flags.read(args)
  manifest = yaml.safe_dump(
      tfjob.render_tfjob(worker_args, worker.architecture, args.workers,
                         args.image, resources), sort_keys=False)
  if args.output == '-':
    sys.stdout.write(manifest)
  else:
    with open(args.output, 'w') as f:
      f.write(manifest)
  return 0


if __name__ == '__main__':
  sys.exit(main())
