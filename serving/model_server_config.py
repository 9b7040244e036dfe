"""TF Serving's config files for the pushed models: written and read.

Production serves the Pushers' output with `tensorflow_model_server`
(ServingConfig.image), configured by three text-format protos:

- `models.config`: a ModelServerConfig listing every served name, its base
  path, the versions kept loaded and the `canary`/`stable` version labels.
  The server polls it, so re-rendering it after a push moves the labels
  without a restart.
- `batching.config`: BatchingParameters, read once at start.
- `monitoring.config`: MonitoringConfig, enabling the Prometheus endpoint.

Everything is built as proto messages and printed with text_format, so the
files are valid by construction, and the parsers here are what the local
stand-in server reads them with. ModelServerConfig comes with the
tensorflow-serving-api package; BatchingParameters and MonitoringConfig do
not, so this module defines them at runtime from descriptors that copy the
TF Serving 2.16.1 .proto files field for field (same package, names,
numbers and types): text written here parses in TF Serving, and back.
"""

from __future__ import annotations

import os
import posixpath
import re
import sys
import tempfile
from typing import Callable, Dict, List, Mapping, Optional, Sequence, TYPE_CHECKING, Tuple

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

if TYPE_CHECKING:  # the server reads these files without the pipeline
  from finsent.configs import PipelineConfig

MODEL_CONFIG_FILE = 'models.config'
BATCHING_CONFIG_FILE = 'batching.config'
MONITORING_CONFIG_FILE = 'monitoring.config'
KUBERNETES_FILE = 'kubernetes.yaml'
# Served on the REST port (PrometheusExporter::kPrometheusPath, the path TF
# Serving also uses when PrometheusConfig.path is empty).
PROMETHEUS_PATH = '/monitoring/prometheus/metrics'
CANARY_LABEL = 'canary'
STABLE_LABEL = 'stable'
# TF Serving's own name for the pool when no batching file is given
# (model_servers/server.cc); a file replaces the whole message, so it is
# set here to keep that name in thread listings and metrics.
_BATCH_THREAD_POOL_NAME = 'model_server_batch_threads'
_PACKAGE = 'tensorflow.serving'
# TF Serving parses version directory names with safe_strto64.
_VERSION_DIR = re.compile(r'[0-9]+')
_INT64_MAX = 2**63 - 1

_Field = descriptor_pb2.FieldDescriptorProto


class ServingConfigError(ValueError):
  """A serving config file TF Serving would refuse; the message says where."""


def _field(name: str, number: int, field_type: int,
           type_name: Optional[str] = None,
           repeated: bool = False) -> _Field:
  return _Field(
      name=name, number=number, type=field_type, type_name=type_name,
      label=_Field.LABEL_REPEATED if repeated else _Field.LABEL_OPTIONAL)


def _wrapper(name: str, number: int, wrapper: str) -> _Field:
  return _field(name, number, _Field.TYPE_MESSAGE,
                type_name=f'.google.protobuf.{wrapper}')


def _file(name: str, dependencies: Sequence[str],
          messages: Mapping[str, Sequence[_Field]]
          ) -> descriptor_pb2.FileDescriptorProto:
  return descriptor_pb2.FileDescriptorProto(
      name=name, package=_PACKAGE, syntax='proto3',
      dependency=list(dependencies),
      message_type=[descriptor_pb2.DescriptorProto(name=n, field=list(f))
                    for n, f in messages.items()])


# tensorflow_serving/servables/tensorflow/session_bundle_config.proto at
# 2.16.1, fields in its order. Only BatchingParameters: the file's other
# messages need TensorFlow's ConfigProto and are not read from a file by
# the server.
_SESSION_BUNDLE_CONFIG = _file(
    'tensorflow_serving/servables/tensorflow/session_bundle_config.proto',
    ['google/protobuf/wrappers.proto'],
    {'BatchingParameters': [
        _wrapper('max_batch_size', 1, 'Int64Value'),
        _wrapper('batch_timeout_micros', 2, 'Int64Value'),
        _wrapper('max_enqueued_batches', 3, 'Int64Value'),
        _wrapper('num_batch_threads', 4, 'Int64Value'),
        _wrapper('thread_pool_name', 5, 'StringValue'),
        _wrapper('enable_large_batch_splitting', 8, 'BoolValue'),
        _wrapper('max_execution_batch_size', 9, 'Int64Value'),
        _field('allowed_batch_sizes', 6, _Field.TYPE_INT64, repeated=True),
        _field('pad_variable_length_inputs', 7, _Field.TYPE_BOOL),
    ]})

# tensorflow_serving/config/monitoring_config.proto at 2.16.1.
_MONITORING_CONFIG = _file(
    'tensorflow_serving/config/monitoring_config.proto', [],
    {'PrometheusConfig': [
        _field('enable', 1, _Field.TYPE_BOOL),
        _field('path', 2, _Field.TYPE_STRING),
    ],
     'MonitoringConfig': [
         _field('prometheus_config', 1, _Field.TYPE_MESSAGE,
                type_name=f'.{_PACKAGE}.PrometheusConfig'),
     ]})


def _message_classes() -> Dict[str, type]:
  """Builds the message classes in a pool of their own.

  Not the default pool: the real generated modules registering these files
  there later (a future tensorflow-serving-api) would then clash.
  """
  pool = descriptor_pool.DescriptorPool()
  pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
  pool.Add(_SESSION_BUNDLE_CONFIG)
  pool.Add(_MONITORING_CONFIG)
  names = ('BatchingParameters', 'MonitoringConfig', 'PrometheusConfig')
  return {name: message_factory.GetMessageClass(
      pool.FindMessageTypeByName(f'{_PACKAGE}.{name}')) for name in names}


_CLASSES = _message_classes()
BatchingParameters = _CLASSES['BatchingParameters']
MonitoringConfig = _CLASSES['MonitoringConfig']
PrometheusConfig = _CLASSES['PrometheusConfig']


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
  problems = _batching_problems(params)
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


def _line_of(text: str, field: str) -> Optional[int]:
  """The first line that sets `field`, for pointing at a semantic error."""
  pattern = re.compile(rf'^\s*{re.escape(field)}\b')
  for number, line in enumerate(text.splitlines(), start=1):
    if pattern.match(line):
      return number
  return None


def _error(path: str, text: str, field: str,
           problem: str) -> ServingConfigError:
  line = _line_of(text, field)
  where = f'{path}:{line}' if line else path
  return ServingConfigError(f'{where}: {field}: {problem}')


def _parse_file(path: str, new_message: Callable[[], message.Message]
                ) -> Tuple[message.Message, str]:
  """(message, text) of a text-format file; errors give file:line:column."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  parsed = new_message()
  try:
    text_format.Parse(text, parsed)
  except text_format.ParseError as e:
    # ParseError's own text starts with "line:column : ".
    detail = re.sub(r'^\d+:\d+ : ', '', str(e))
    raise ServingConfigError(
        f'{path}:{e.GetLine()}:{e.GetColumn()}: {detail}') from e
  return parsed, text


def parse_model_config_file(
    path: str) -> model_server_config_pb2.ModelServerConfig:
  """Reads a `models.config`, refusing what TF Serving's ServerCore refuses.

  Besides text-format errors, that is a name listed twice or a relative base
  path (ValidateModelConfigList).

  Raises:
    ServingConfigError: naming the file, and the line where known.
  """
  server_config, text = _parse_file(
      path, model_server_config_pb2.ModelServerConfig)
  seen = set()
  for model in server_config.model_config_list.config:
    if model.name in seen:
      raise _error(path, text, 'name', f'model {model.name!r} listed twice')
    seen.add(model.name)
    if not posixpath.isabs(model.base_path):
      raise _error(path, text, 'base_path',
                   f'{model.base_path!r} of model {model.name!r} is not '
                   'absolute')
  return server_config


def _batching_problems(params: message.Message) -> List[Tuple[str, str]]:
  """(field, problem) for values TF Serving's batching setup rejects."""
  problems = []
  for field in ('max_batch_size', 'max_enqueued_batches', 'num_batch_threads',
                'max_execution_batch_size'):
    if params.HasField(field) and getattr(params, field).value < 1:
      problems.append((field, 'must be positive'))
  if (params.HasField('batch_timeout_micros')
      and params.batch_timeout_micros.value < 0):
    problems.append(('batch_timeout_micros', 'must not be negative'))
  sizes = list(params.allowed_batch_sizes)
  if any(a >= b for a, b in zip(sizes, sizes[1:])):
    problems.append(('allowed_batch_sizes', 'must increase'))
  if (sizes and params.HasField('max_batch_size')
      and sizes[-1] != params.max_batch_size.value):
    problems.append(('allowed_batch_sizes',
                     f'the last entry ({sizes[-1]}) must equal '
                     f'max_batch_size ({params.max_batch_size.value})'))
  return problems


def parse_batching_parameters_file(path: str) -> message.Message:
  """Reads a `batching.config` into a BatchingParameters message.

  Raises:
    ServingConfigError: on a text-format error (file:line:column, and the
      unknown field or bad value), or a value TF Serving's batching refuses
      (a non-positive size or thread count, allowed_batch_sizes not
      increasing or not ending at max_batch_size).
  """
  params, text = _parse_file(path, BatchingParameters)
  problems = _batching_problems(params)
  if problems:
    raise _error(path, text, *problems[0])
  return params


def parse_monitoring_config_file(path: str) -> message.Message:
  """Reads a `monitoring.config` into a MonitoringConfig message.

  Raises:
    ServingConfigError: on a text-format error (file:line:column), or an
      enabled Prometheus path that is not absolute (the HTTP server matches
      it against the request path, which always starts with '/').
  """
  monitoring, text = _parse_file(path, MonitoringConfig)
  prometheus = monitoring.prometheus_config
  if prometheus.enable and prometheus.path and not prometheus.path.startswith(
      '/'):
    raise _error(path, text, 'path',
                 f'{prometheus.path!r} does not start with "/"')
  return monitoring


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
  # Imported here: serving.kubernetes builds on this module.
  from finsent.serving import kubernetes  # pylint: disable=g-import-not-at-top
  model_config = render_model_config(
      config, base_path_root or config.serving.models_mount_path,
      pushed_versions_under(config.serving_root))
  batching_config = render_batching_config(config)
  monitoring_config = render_monitoring_config(config)
  contents = {
      MODEL_CONFIG_FILE: model_config,
      BATCHING_CONFIG_FILE: batching_config,
      MONITORING_CONFIG_FILE: monitoring_config,
      KUBERNETES_FILE: kubernetes.render_manifests(
          config, model_config, batching_config, monitoring_config),
  }
  os.makedirs(output_dir, exist_ok=True)
  paths = []
  for name, text in contents.items():
    path = os.path.join(output_dir, name)
    _write_atomically(path, text)
    paths.append(path)
  return paths


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent serving-config') -> int:
  """`finsent serving-config`: writes the files for the pushed models."""
  import argparse  # pylint: disable=g-import-not-at-top
  from finsent import configs  # pylint: disable=g-import-not-at-top
  parser = argparse.ArgumentParser(
      prog=prog, description='Write TF Serving\'s models.config, '
      'batching.config, monitoring.config and Kubernetes manifests for the '
      'models pushed under --serving_model_dir.')
  parser.add_argument('--output_dir', required=True)
  parser.add_argument('--serving_model_dir',
                      help='push destination root (default: ./serving_model)')
  parser.add_argument('--local', action='store_true',
                      help='base paths on this machine (for finsent serve) '
                      'instead of the container\'s mount path')
  args = parser.parse_args(argv)
  config = configs.PipelineConfig(serving_model_dir=args.serving_model_dir)
  try:
    paths = write_serving_files(
        config, args.output_dir,
        config.serving_root if args.local else None)
  except (OSError, ValueError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  for path in paths:
    print(path)
  return 0
