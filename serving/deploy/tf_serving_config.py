"""What TF Serving is given to serve the pushed models: its config files'
text and its command line.

Production serves the Pushers' output with `tensorflow_model_server`
(ServingConfig.image). Everything here is rendered from PipelineConfig and
the version directories pushed so far:

- `models.config` names every served model with a version, its base path,
  the versions kept loaded and the `canary`/`stable` version labels. The
  server polls it, so rendering it again after a push moves the labels
  without a restart;
- `batching.config` and `monitoring.config`, read once at start;
- tensorflow_model_server's flags, reading those files.

The files are built as proto messages (serving.config_files) and printed
with text_format, so they are valid by construction.
"""

import os
import posixpath
import re
from typing import Dict, List, Mapping, Sequence

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from finsent.configs import PipelineConfig
from finsent.serving.config_files import BATCHING_CONFIG_FILE
from finsent.serving.config_files import batching_problems
from finsent.serving.config_files import BatchingParameters
from finsent.serving.config_files import MODEL_CONFIG_FILE
from finsent.serving.config_files import MONITORING_CONFIG_FILE
from finsent.serving.config_files import MonitoringConfig
from finsent.serving.config_files import PROMETHEUS_PATH

CANARY_LABEL = 'canary'
STABLE_LABEL = 'stable'
# TF Serving's own name for the pool when no batching file is given
# (model_servers/server.cc); a file replaces the whole message, so it is
# set here to keep that name in thread listings and metrics.
_BATCH_THREAD_POOL_NAME = 'model_server_batch_threads'
# TF Serving parses version directory names with safe_strto64.
_VERSION_DIR = re.compile(r'[0-9]+')
_INT64_MAX = 2**63 - 1


def pushed_versions_under(serving_root: str) -> Dict[str, List[int]]:
  """The integer version directories under each model directory, ascending.

  Other names (the Pusher's `.<version>.incomplete` staging directories,
  stray files) are skipped, as TF Serving skips them. A missing root means
  nothing was pushed yet.
  """
  if not os.path.isdir(serving_root):
    return {}
  versions = {}
  for name in sorted(os.listdir(serving_root)):
    model_dir = os.path.join(serving_root, name)
    if name.startswith('.') or not os.path.isdir(model_dir):
      continue
    versions[name] = sorted(
        int(v) for v in os.listdir(model_dir)
        if _VERSION_DIR.fullmatch(v) and int(v) <= _INT64_MAX
        and os.path.isdir(os.path.join(model_dir, v)))
  return versions


def _version_labels(versions: Sequence[int],
                    num_versions: int) -> Dict[str, int]:
  """`canary`: the newest version; `stable`: the one before it.

  A single version is `stable` (nothing is being tried yet). Only versions
  the latest{num_versions} policy keeps get a label, since TF Serving
  refuses a label on a version it has not loaded.
  """
  if len(versions) == 1:
    return {STABLE_LABEL: versions[0]}
  kept = sorted(versions)[-num_versions:]
  labels = {}
  if kept:
    labels[CANARY_LABEL] = kept[-1]
  if len(kept) >= 2:
    labels[STABLE_LABEL] = kept[-2]
  return labels


def render_model_config(config: PipelineConfig, base_path_root: str,
                        pushed_versions: Mapping[str, Sequence[int]]) -> str:
  """`models.config`: a ModelServerConfig entry per served name.

  Args:
    config: the pipeline's config (served names, ServingConfig.num_versions).
    base_path_root: where the push destination is, as the server sees it
      (ServingConfig.models_mount_path in the container); each model's base
      path is `<base_path_root>/<name>`, which TF Serving wants absolute.
    pushed_versions: the versions pushed per name (`pushed_versions_under`);
      names missing from it have none.

  Returns:
    The config in protobuf text format. A name with no version pushed yet
    is left out: TF Serving opens no port until every listed model has a
    version loaded, so one never-pushed model would keep all from serving.
    Rendered again after its first push, it is added (TF Serving re-reads
    the file).
  """
  num_versions = config.serving.num_versions
  if num_versions < 1:
    raise ValueError(
        f'ServingConfig.num_versions must be at least 1, not {num_versions}')
  server_config = model_server_config_pb2.ModelServerConfig()
  for name in config.served_model_names:
    if not pushed_versions.get(name):
      continue
    model = server_config.model_config_list.config.add(
        name=name, base_path=posixpath.join(base_path_root, name),
        model_platform='tensorflow')
    model.model_version_policy.latest.num_versions = num_versions
    model.version_labels.update(
        _version_labels(pushed_versions.get(name, ()), num_versions))
  return text_format.MessageToString(server_config)


def render_batching_config(config: PipelineConfig) -> str:
  """`batching.config`: BatchingParameters from ServingConfig.batching."""
  batching = config.serving.batching
  params = BatchingParameters()
  params.max_batch_size.value = batching.max_batch_size
  params.batch_timeout_micros.value = batching.batch_timeout_micros
  params.max_enqueued_batches.value = batching.max_enqueued_batches
  params.num_batch_threads.value = batching.num_batch_threads
  params.thread_pool_name.value = _BATCH_THREAD_POOL_NAME
  problems = batching_problems(params)
  if problems:
    raise ValueError('ServingConfig.batching: ' + '; '.join(
        f'{field}: {problem}' for field, problem in problems))
  return text_format.MessageToString(params)


def render_monitoring_config(config: PipelineConfig) -> str:
  """`monitoring.config`: Prometheus metrics at PROMETHEUS_PATH.

  `config` is taken for symmetry with the other renderers; nothing in it
  changes the monitoring config yet.
  """
  del config  # Unused: the path is fixed (see PROMETHEUS_PATH).
  monitoring = MonitoringConfig()
  monitoring.prometheus_config.enable = True
  monitoring.prometheus_config.path = PROMETHEUS_PATH
  return text_format.MessageToString(monitoring)


def model_server_args(config: PipelineConfig, config_dir: str) -> List[str]:
  """`tensorflow_model_server`'s flags, reading the config files in config_dir.

  Flag names as in TF Serving 2.16.1's model_servers/main.cc.
  """
  serving = config.serving
  def in_dir(name: str) -> str:
    return posixpath.join(config_dir, name)
  return [
      f'--port={serving.grpc_port}',
      f'--rest_api_port={serving.rest_api_port}',
      f'--model_config_file={in_dir(MODEL_CONFIG_FILE)}',
      # A push is served once both polls saw it: the new version directory
      # (file_system_poll) and the labels moved to it (models.config poll),
      # so one knob sets both.
      f'--model_config_file_poll_wait_seconds='
      f'{serving.file_system_poll_wait_seconds}',
      f'--file_system_poll_wait_seconds='
      f'{serving.file_system_poll_wait_seconds}',
      # ServerCore assigns labels before it loads anything, so at start no
      # version is available and every label would be refused without this.
      # It covers only labels not assigned yet: moving `canary` to a version
      # still loading is still refused (logged), and retried at each poll
      # until that version is available.
      '--allow_version_labels_for_unavailable_models=true',
      '--enable_batching=true',
      f'--batching_parameters_file={in_dir(BATCHING_CONFIG_FILE)}',
      f'--monitoring_config_file={in_dir(MONITORING_CONFIG_FILE)}',
  ]
