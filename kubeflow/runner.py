"""The pipeline for Kubeflow Pipelines v2 (a PipelineSpec YAML) and Vertex
AI Pipelines (a PipelineJob JSON), compiled offline: nothing is uploaded.

TFX's KubeflowV2DagRunner compiles the very `create_pipeline` that
`finsent run` runs, from configs.KubeflowConfig. Every task runs the
pipeline image (Dockerfile), where finsent is installed, so the module
paths (`finsent.models.trainer.run_fn`) import there; the data folder is
the runtime parameter `data_root`; the Trainers get the container
resources asked for. `finsent compile-kubeflow` is the command.

KFP v1's KubeflowDagRunner (Argo YAML) is gone from TFX 1.16:
tfx.orchestration.kubeflow.kubeflow_dag_runner does not exist, so only the
v2 spec is compiled (docs/kubeflow.md).
"""

import os
from typing import Tuple

from kfp.pipeline_spec import pipeline_spec_pb2
from tfx import v1 as tfx
import yaml

from finsent import configs
from finsent.pipeline import pipeline as pipeline_lib

DATA_ROOT_PARAMETER = configs.DATA_ROOT_PARAMETER
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
