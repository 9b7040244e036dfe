"""TF Serving's text-format config files: their names, messages and parsers.

tensorflow_model_server is configured by three text-format protos, which
the deployment writer (serving.deploy) renders and the local model server
(serving.server) reads, so both build on this module and on nothing of
each other:

- `models.config`: a ModelServerConfig listing every served name, its base
  path, the versions kept loaded and the version labels; the server polls
  it;
- `batching.config`: BatchingParameters, read once at start;
- `monitoring.config`: MonitoringConfig, enabling the Prometheus endpoint.

ModelServerConfig comes with the tensorflow-serving-api package;
BatchingParameters and MonitoringConfig do not, so this module defines them
at runtime from descriptors that copy the TF Serving 2.16.1 .proto files
field for field (same package, names, numbers and types): text written
with them parses in TF Serving, and back. The parsers refuse what TF
Serving refuses, naming the file and line.
"""

import posixpath
import re
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from google.protobuf import descriptor_pb2
from google.protobuf import descriptor_pool
from google.protobuf import message
from google.protobuf import message_factory
from google.protobuf import text_format
from google.protobuf import wrappers_pb2
from tensorflow_serving.config import model_server_config_pb2

MODEL_CONFIG_FILE = 'models.config'
BATCHING_CONFIG_FILE = 'batching.config'
MONITORING_CONFIG_FILE = 'monitoring.config'
# Served on the REST port (PrometheusExporter::kPrometheusPath, the path TF
# Serving also uses when PrometheusConfig.path is empty).
PROMETHEUS_PATH = '/monitoring/prometheus/metrics'
_PACKAGE = 'tensorflow.serving'

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


def batching_problems(params: message.Message) -> List[Tuple[str, str]]:
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
  problems = batching_problems(params)
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
