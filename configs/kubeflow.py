"""Knobs of the pipeline compiled for Kubeflow Pipelines and Vertex AI
Pipelines, and of multi-worker Trainers on Kubernetes (docs/kubeflow.md)."""

import dataclasses
import os
from typing import Optional, Tuple

from finsent.configs import flag_types
from finsent.configs.knobs import knob
from finsent.configs.paths import DATA_DIR
from finsent.configs.paths import SCHEMA_FILE

# The compiled spec's runtime parameter naming the data folder.
DATA_ROOT_PARAMETER = 'data_root'


@dataclasses.dataclass(frozen=True)
class ContainerResources:
  """Limits of a Trainer's container: in the compiled pipeline (the
  PipelineSpec's resources, as kfp's set_cpu_limit, set_memory_limit and
  set_accelerator_type/limit) and in a TFJob's pods (kubeflow/tfjob.py)."""
  cpu_limit: float = knob(8.0, 'CPUs of the container',
                          parse=flag_types.positive_float)
  memory_limit_gb: float = knob(32.0, 'memory of the container in GB',
                                flag='memory_limit',
                                parse=flag_types.positive_float)
  accelerator_type: Optional[str] = knob(
      None, 'an accelerator, e.g. NVIDIA_TESLA_T4 (Vertex AI) or '
      'nvidia.com/gpu (Kubeflow)')
  accelerator_count: int = knob(0, 'accelerators (with the accelerator '
                                'type)', flag='accelerator_limit')


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
  """The pipeline compiled to a PipelineSpec (`finsent compile-kubeflow`).

  Every pod runs `image` (the Dockerfile: the lock's packages and this
  project), and reads and writes object storage that TensorFlow's file
  system reaches (gs://, s3://): pipeline outputs under `output_dir`,
  pushed models under <output_dir>/serving_model for TF Serving.
  """
  image: str = knob('finsent-pipeline:latest', 'the pipeline image every '
                    'task runs, as the cluster pulls it')
  # Where the Dockerfile installs the project (its data/ holds the schema).
  image_package_dir: str = knob(
      '/usr/local/lib/python3.11/site-packages/finsent', 'where finsent is '
      'installed inside the image', cli=False)
  output_dir: str = knob('gs://finsent-pipelines', 'object storage for '
                         'pipeline outputs and pushed models')
  # The data folder is a runtime parameter of the compiled pipeline
  # (`data_root`); its split files are named here, as the cluster's storage
  # is not listed when compiling.
  data_root: str = knob(
      'gs://finsent-pipelines/data/twitter_financial_news_sentiment',
      "the data folder: the default of the spec's data_root parameter",
      cli=False)
  data_splits: Tuple[Tuple[str, str], ...] = knob(
      (('train', 'sent_train.csv'), ('eval', 'sent_valid.csv')),
      'split name -> file pattern under the data folder', cli=False)
  trainer: ContainerResources = ContainerResources()
  output_file: str = knob('kubeflow/build/finsent_pipeline.json',
                          'the pipeline job JSON', cli=False)

  def image_path(self, package_file: str) -> str:
    """Where a file of the installed finsent is inside the image."""
    return os.path.join(self.image_package_dir, os.path.relpath(
        package_file, os.path.dirname(DATA_DIR)))

  @property
  def image_schema_file(self) -> str:
    return self.image_path(SCHEMA_FILE)
