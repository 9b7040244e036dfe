"""A multi-worker Trainer on Kubernetes, as a Kubeflow Training Operator
TFJob manifest (`finsent render-tfjob`, which shows its use).

The operator starts `--workers` pods of the pipeline image and sets
TF_CONFIG in each (the cluster and the pod's index). Each pod runs `finsent
train-worker` with the command's other flags; its `auto` strategy turns
TF_CONFIG into MultiWorkerMirroredStrategy (models.strategy). Worker 0 is the chief and alone writes the model and its
logs, so the paths must be on storage every pod reaches (gs://, s3://, a
ReadWriteMany volume).
"""

from typing import Any, Dict, List

from finsent import configs

# The container name the Training Operator looks for in a TFJob.
CONTAINER_NAME = 'tensorflow'


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
