"""What `finsent serving-config` writes: TF Serving's files and the
Kubernetes manifests, into one directory.

models.config, batching.config, monitoring.config (tf_serving_config) and
kubernetes.yaml (manifests), each replaced atomically, so a server polling
models.config never reads half a file.
"""

import os
import tempfile
from typing import List, Optional

from finsent.configs import PipelineConfig
from finsent.serving.config_files import BATCHING_CONFIG_FILE
from finsent.serving.config_files import MODEL_CONFIG_FILE
from finsent.serving.config_files import MONITORING_CONFIG_FILE
from finsent.serving.deploy import manifests
from finsent.serving.deploy import tf_serving_config

KUBERNETES_FILE = 'kubernetes.yaml'


def _write_atomically(path: str, text: str) -> None:
  """Writes via a temporary file and a rename, so that a server polling
  `path` reads either the old file or the new one, never half of one."""
  directory = os.path.dirname(path) or '.'
  fd, temp_path = tempfile.mkstemp(
      dir=directory, prefix=f'.{os.path.basename(path)}.', suffix='.tmp')
  try:
    with os.fdopen(fd, 'w', encoding='utf-8') as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.chmod(temp_path, 0o644)  # mkstemp's 0600 would hide it from a server
    os.replace(temp_path, path)
  except BaseException:
    os.unlink(temp_path)
    raise


def write_serving_files(config: PipelineConfig, output_dir: str,
                        base_path_root: Optional[str] = None) -> List[str]:
  """Writes models.config, batching.config, monitoring.config and
  kubernetes.yaml into output_dir; returns their paths, in that order.

  models.config names the versions now under config.serving_root, at
  `base_path_root`: by default where the container mounts them
  (ServingConfig.models_mount_path); config.serving_root itself for a
  server on this machine. Run this again after a push to move the labels.
  """
  model_config = tf_serving_config.render_model_config(
      config, base_path_root or config.serving.models_mount_path,
      tf_serving_config.pushed_versions_under(config.serving_root))
  batching_config = tf_serving_config.render_batching_config(config)
  monitoring_config = tf_serving_config.render_monitoring_config(config)
  contents = {
      MODEL_CONFIG_FILE: model_config,
      BATCHING_CONFIG_FILE: batching_config,
      MONITORING_CONFIG_FILE: monitoring_config,
      KUBERNETES_FILE: manifests.render_manifests(
          config, model_config, batching_config, monitoring_config),
  }
  os.makedirs(output_dir, exist_ok=True)
  paths = []
  for name, text in contents.items():
    path = os.path.join(output_dir, name)
    _write_atomically(path, text)
    paths.append(path)
  return paths
