"""Versions of served models, loaded and unloaded as TF Serving does it.

Each model in a `ModelServerConfig` (TF Serving's models.config) has a base
path holding one directory per integer version. `ModelManager` polls those
paths, and for each model:

* the version policy (`latest {num_versions}`, `all`, `specific`) says which
  versions on disk are *aspired*;
* an aspired version is loaded fully - session, variables, tables - and its
  warm-up requests (assets.extra/tf_serving_warmup_requests) are replayed
  before it is marked AVAILABLE and takes traffic;
* a version that is no longer aspired is unloaded only once another version
  is AVAILABLE (TF Serving's availability-preserving policy), and only after
  the requests it is serving have finished;
* a version that fails to load or warm up is reported in the status with
  its error (state END) and never takes traffic; it is not retried.

Models load the way TF Serving loads them: the SavedModel's MetaGraph in a
TF1 session, its SignatureDefs (method names included) are the API, so
metadata and the classify/predict checks match what TF Serving reports.
"""

import dataclasses
import os
import threading
import time
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
import grpc
import numpy as np
import tensorflow as tf
# Registers the tf.Text ops the models' preprocessing graph uses.
import tensorflow_text  # noqa: F401
from tensorflow.core.protobuf import meta_graph_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2
from tensorflow_serving.apis import status_pb2

from finsent.serving.server.errors import ServingError

WARMUP_FILE = os.path.join('assets.extra', 'tf_serving_warmup_requests')
# TF Serving replays at most this many warm-up records.
MAX_WARMUP_RECORDS = 1000
_State = get_model_status_pb2.ModelVersionStatus.State


def signature_key(signature_name: str) -> str:
  """The signature a request names ('' means serving_default)."""
  return signature_name or tf.saved_model.DEFAULT_SERVING_SIGNATURE_DEF_KEY


class LoadedVersion:
  """One version of a model, loaded in its own TF session.

  `run` is thread-safe (TF sessions are) and releases the GIL while the
  graph runs, so concurrent requests use every core.
  """

  def __init__(self, name: str, version: int, path: str,
               session_config: Optional[tf.compat.v1.ConfigProto] = None):
    self.name = name
    self.version = version
    self.path = path
    self._graph = tf.Graph()
    self._session = tf.compat.v1.Session(graph=self._graph,
                                         config=session_config)
    with self._graph.as_default():
      meta_graph = tf.compat.v1.saved_model.loader.load(
          self._session, [tf.saved_model.SERVING], path)
    self.signature_defs: Dict[str, meta_graph_pb2.SignatureDef] = dict(
        meta_graph.signature_def)
    self._callables: Dict[Tuple, Callable] = {}
    self._callables_lock = threading.Lock()
    self._in_flight = 0
    self._idle = threading.Condition()

  def signature(self, signature_name: str) -> meta_graph_pb2.SignatureDef:
    """The SignatureDef called `signature_name` ('' = serving_default)."""
    name = signature_key(signature_name)
    if name not in self.signature_defs:
      raise ServingError(
          grpc.StatusCode.FAILED_PRECONDITION,
          f'Serving signature key "{name}" not found.')
    return self.signature_defs[name]

  def run(self, signature_name: str, inputs: Dict[str, np.ndarray],
          output_filter: Sequence[str] = ()) -> Dict[str, np.ndarray]:
    """Runs a signature on `inputs` (keyed by input alias).

    Returns the outputs named in `output_filter` (all when empty), keyed by
    output alias.
    """
    signature = self.signature(signature_name)
    _check_inputs(signature, inputs)
    output_names = list(output_filter) or sorted(signature.outputs)
    for alias in output_names:
      if alias not in signature.outputs:
        raise ServingError(
            grpc.StatusCode.INVALID_ARGUMENT,
            f'output tensor alias not found in signature: {alias} Outputs '
            f'expected to be in the set {{{",".join(sorted(signature.outputs))}}}.')
    input_names = sorted(inputs)
    run = self._callable(signature, tuple(input_names), tuple(output_names))
    try:
      values = run(*[inputs[alias] for alias in input_names])
    except tf.errors.OpError as e:
      raise ServingError(grpc.StatusCode(_GRPC_CODES[e.error_code]),
                         e.message) from e
    return dict(zip(output_names, values))

  def _callable(self, signature, input_names, output_names) -> Callable:
    key = (id(signature), input_names, output_names)
    with self._callables_lock:
      if key not in self._callables:
        graph = self._graph
        self._callables[key] = self._session.make_callable(
            [graph.get_tensor_by_name(signature.outputs[a].name)
             for a in output_names],
            feed_list=[graph.get_tensor_by_name(signature.inputs[a].name)
                       for a in input_names])
      return self._callables[key]

  def retain(self) -> None:
    """Counts a request against this version until `release`."""
    with self._idle:
      self._in_flight += 1

  def release(self) -> None:
    with self._idle:
      self._in_flight -= 1
      self._idle.notify_all()

  def close(self) -> None:
    """Waits for the requests in flight, then frees the session."""
    with self._idle:
      self._idle.wait_for(lambda: self._in_flight == 0)
    self._session.close()


# tf.errors codes are the canonical gRPC codes.
_GRPC_CODES = {code.value[0]: code.value for code in grpc.StatusCode}


def _check_inputs(signature: meta_graph_pb2.SignatureDef,
                  inputs: Dict[str, np.ndarray]) -> None:
  """The inputs a signature takes, of its dtypes, as TF Serving checks them
  before running the session."""
  sent, expected = set(inputs), set(signature.inputs)
  if sent != expected:
    def names(keys):
      return ','.join(sorted(keys))
    raise ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f'input size does not match signature: {len(sent)}!={len(expected)} '
        f'len({{{names(sent)}}}) != len({{{names(expected)}}}). '
        f'Sent extra: {{{names(sent - expected)}}}. '
        f'Missing but required: {{{names(expected - sent)}}}.')
  for index, alias in enumerate(sorted(inputs)):
    value = inputs[alias]
    given = (tf.string if value.dtype.kind in 'OSU'
             else tf.as_dtype(value.dtype))
    wanted = tf.as_dtype(signature.inputs[alias].dtype)
    if given != wanted:
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f'Expects arg[{index}] to be {wanted.name} but {given.name} is '
          f'provided')
    shape = tf.TensorShape(signature.inputs[alias].tensor_shape)
    if not shape.is_compatible_with(value.shape):
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f'input {alias}: shape {list(value.shape)} does not match the '
          f'signature\'s {shape}')


def replay_warmup_requests(loaded: LoadedVersion) -> int:
  """Runs the version's warm-up records; returns how many were replayed.

  Like TF Serving, a failing warm-up request fails the load.
  """
  path = os.path.join(loaded.path, WARMUP_FILE)
  if not tf.io.gfile.exists(path):
    return 0
  replayed = 0
  for record in tf.compat.v1.io.tf_record_iterator(path):
    if replayed == MAX_WARMUP_RECORDS:
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          f'Number of warmup records exceeds the maximum '
          f'({MAX_WARMUP_RECORDS}) at {path}')
    log = prediction_log_pb2.PredictionLog.FromString(record)
    kind = log.WhichOneof('log_type')
    if kind != 'predict_log':
      raise ServingError(
          grpc.StatusCode.UNIMPLEMENTED,
          f'Unsupported log_type for warmup: {kind} in {path}')
    request = log.predict_log.request
    loaded.run(request.model_spec.signature_name,
               {alias: tf.make_ndarray(tensor)
                for alias, tensor in request.inputs.items()},
               list(request.output_filter))
    replayed += 1
  return replayed


@dataclasses.dataclass
class _VersionStatus:
  state: int
  error_message: str = ''
  error_code: int = 0  # google.rpc code; 0 = OK


class ServedModel:
  """One model name: its versions on disk, loaded versions and labels."""

  def __init__(self, config: model_server_config_pb2.ModelConfig,
               session_config: Optional[tf.compat.v1.ConfigProto] = None,
               on_load: Optional[Callable] = None,
               on_unload: Optional[Callable] = None):
    """`on_load(name, version, ok, seconds)` and `on_unload(name, version)`
    are told of every load attempt and unload (the server's metrics)."""
    self.name = config.name
    self._session_config = session_config
    self._on_load = on_load
    self._on_unload = on_unload
    self._lock = threading.Lock()
    self._available: Dict[int, LoadedVersion] = {}
    self._status: Dict[int, _VersionStatus] = {}
    self.update_config(config)

  def update_config(self, config: model_server_config_pb2.ModelConfig):
    """Takes a new base path, policy and labels (config reload)."""
    with self._lock:
      self.base_path = config.base_path
      self._policy = config.model_version_policy
      self._labels = dict(config.version_labels)

  def aspired_versions(self, on_disk: Sequence[int]) -> List[int]:
    """The versions the policy wants loaded, of those on disk."""
    policy = self._policy.WhichOneof('policy_choice')
    if policy == 'all':
      return sorted(on_disk)
    if policy == 'specific':
      return sorted(set(on_disk) & set(self._policy.specific.versions))
    # TF Serving's default: the latest version.
    latest = self._policy.latest.num_versions or 1
    return sorted(on_disk)[-latest:]

  def versions_on_disk(self) -> Dict[int, str]:
    """Integer-named directories under the base path (others are ignored,
    such as a push still being staged)."""
    if not tf.io.gfile.isdir(self.base_path):
      return {}
    found = {}
    for entry in tf.io.gfile.listdir(self.base_path):
      entry = entry.rstrip('/')
      path = os.path.join(self.base_path, entry)
      if entry.isdigit() and tf.io.gfile.isdir(path):
        found[int(entry)] = path
    return found

  def poll(self) -> None:
    """Loads newly aspired versions, then unloads the ones no longer aspired."""
    on_disk = self.versions_on_disk()
    aspired = self.aspired_versions(list(on_disk))
    for version in aspired:
      with self._lock:
        if version in self._status:
          continue  # loaded, or failed once: TF Serving does not retry either
        self._status[version] = _VersionStatus(_State.LOADING)
      self._load(version, on_disk[version])
    with self._lock:
      any_aspired_available = any(v in self._available for v in aspired)
      retiring = [v for v in self._available if v not in aspired]
      if retiring and (any_aspired_available or not aspired):
        for version in retiring:
          self._status[version] = _VersionStatus(_State.UNLOADING)
        unloading = [self._available.pop(v) for v in retiring]
      else:
        unloading = []
    for loaded in unloading:
      loaded.close()
      logging.info('Unloaded %s version %d', self.name, loaded.version)
      with self._lock:
        self._status[loaded.version] = _VersionStatus(_State.END)
      _notify(self._on_unload, self.name, loaded.version)

  def _load(self, version: int, path: str) -> None:
    started = time.monotonic()
    try:
      loaded = LoadedVersion(self.name, version, path, self._session_config)
      warmed = replay_warmup_requests(loaded)
    except Exception as e:  # pylint: disable=broad-except
      # Whatever breaks a load (a corrupt file, a missing op, a warm-up
      # request that fails) is reported in the status, never raised into
      # the poll loop: the versions already serving go on serving.
      message = getattr(e, 'message', None) or str(e)
      code = (e.code.value[0] if isinstance(e, ServingError)
              else grpc.StatusCode.UNKNOWN.value[0])
      logging.error('Failed to load %s version %d from %s: %s',
                    self.name, version, path, message)
      with self._lock:
        self._status[version] = _VersionStatus(_State.END, message, code)
      _notify(self._on_load, self.name, version, False,
              time.monotonic() - started)
      return
    with self._lock:
      self._available[version] = loaded
      self._status[version] = _VersionStatus(_State.AVAILABLE)
    logging.info('Loaded %s version %d (%d warm-up requests) in %.1f s',
                 self.name, version, warmed, time.monotonic() - started)
    _notify(self._on_load, self.name, version, True,
            time.monotonic() - started)

  def is_available(self, version: int) -> bool:
    with self._lock:
      return version in self._available

  def acquire(self, version: Optional[int] = None,
              label: Optional[str] = None) -> LoadedVersion:
    """The requested version (newest available by default), retained: it
    stays loaded until the caller calls its `release()`."""
    with self._lock:
      if label is not None:
        if label not in self._labels:
          raise ServingError(
              grpc.StatusCode.INVALID_ARGUMENT,
              f'Unrecognized servable version label: {label}')
        version = self._labels[label]
      if version is None:
        if not self._available:
          raise ServingError(
              grpc.StatusCode.NOT_FOUND,
              f'Servable not found for request: Latest({self.name})')
        version = max(self._available)
      loaded = self._available.get(version)
      if loaded is None:
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f'Servable not found for request: Specific({self.name}, '
            f'{version})')
      # Counted under the model lock, so an unload cannot slip in between.
      loaded.retain()
    return loaded

  def status(self, version: Optional[int] = None
             ) -> get_model_status_pb2.GetModelStatusResponse:
    """TF Serving's GetModelStatus answer for this model."""
    with self._lock:
      statuses = dict(self._status)
    if version is not None:
      if version not in statuses:
        raise ServingError(
            grpc.StatusCode.NOT_FOUND,
            f'Could not find version {version} of model {self.name}')
      statuses = {version: statuses[version]}
    if not statuses:
      raise ServingError(
          grpc.StatusCode.NOT_FOUND,
          f'Could not find any versions of model {self.name}')
    response = get_model_status_pb2.GetModelStatusResponse()
    for v in sorted(statuses, reverse=True):
      status = statuses[v]
      response.model_version_status.add(
          version=v, state=status.state,
          status=status_pb2.StatusProto(error_code=status.error_code,
                                        error_message=status.error_message))
    return response

  def unload_all(self) -> None:
    with self._lock:
      unloading = list(self._available.values())
      self._available.clear()
    for loaded in unloading:
      loaded.close()


def _notify(hook: Optional[Callable], *args) -> None:
  if hook is not None:
    hook(*args)


class ModelManager:
  """Every served model, kept in step with its base path by a poll thread."""

  def __init__(self, config: model_server_config_pb2.ModelServerConfig,
               poll_wait_seconds: float = 1.0,
               session_config: Optional[tf.compat.v1.ConfigProto] = None,
               on_load: Optional[Callable] = None,
               on_unload: Optional[Callable] = None,
               allow_version_labels_for_unavailable_models: bool = False):
    self._poll_wait_seconds = poll_wait_seconds
    self._allow_unavailable_labels = (
        allow_version_labels_for_unavailable_models)
    self._session_config = session_config
    self._on_load = on_load
    self._on_unload = on_unload
    self._lock = threading.Lock()
    self._models: Dict[str, ServedModel] = {}
    self._stop = threading.Event()
    self._thread: Optional[threading.Thread] = None
    self.reload_config(config)

  def reload_config(self, config: model_server_config_pb2.ModelServerConfig
                    ) -> None:
    """Adds, updates and removes models to match `config`.

    As in TF Serving, a label must name an AVAILABLE version, or the whole
    config is refused (at start, before anything loads, every label is
    refused): --allow_version_labels_for_unavailable_models lifts that.
    """
    if config.WhichOneof('config') != 'model_config_list':
      raise ServingError(
          grpc.StatusCode.INVALID_ARGUMENT,
          'ModelServerConfig.model_config_list is required (custom '
          'model configs are not supported)')
    entries = list(config.model_config_list.config)
    names = [entry.name for entry in entries]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
      raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                         f'Illegal to list model {sorted(duplicates)[0]} '
                         f'multiple times in config list')
    for entry in entries:
      _check_model_config(entry)
    removed = []
    with self._lock:
      if not self._allow_unavailable_labels:
        for entry in entries:
          model = self._models.get(entry.name)
          for label, version in sorted(entry.version_labels.items()):
            if model is None or not model.is_available(version):
              raise ServingError(
                  grpc.StatusCode.FAILED_PRECONDITION,
                  f'Request to assign label to version {version} of model '
                  f'{entry.name}, which is not currently available for '
                  f'inference')
      for entry in entries:
        if entry.name in self._models:
          self._models[entry.name].update_config(entry)
        else:
          self._models[entry.name] = ServedModel(
              entry, self._session_config, self._on_load, self._on_unload)
      for name in set(self._models) - set(names):
        removed.append(self._models.pop(name))
    for model in removed:
      model.unload_all()

  def model(self, name: str) -> ServedModel:
    with self._lock:
      model = self._models.get(name)
    if model is None:
      raise ServingError(grpc.StatusCode.NOT_FOUND,
                         f'Servable not found for request: Latest({name})')
    return model

  def poll_once(self) -> None:
    with self._lock:
      models = list(self._models.values())
    for model in models:
      model.poll()

  def start(self) -> None:
    """Loads what is on disk now, then keeps polling in the background."""
    self.poll_once()
    self._thread = threading.Thread(target=self._poll_forever,
                                    name='model-version-poll', daemon=True)
    self._thread.start()

  def _poll_forever(self) -> None:
    while not self._stop.wait(self._poll_wait_seconds):
      try:
        self.poll_once()
      except Exception:  # pylint: disable=broad-except
        # A poll that fails (a file system hiccup) must not stop the next.
        logging.exception('Polling the model base paths failed')

  def stop(self) -> None:
    self._stop.set()
    if self._thread is not None:
      self._thread.join()
    with self._lock:
      models = list(self._models.values())
    for model in models:
      model.unload_all()


def _check_model_config(entry: model_server_config_pb2.ModelConfig) -> None:
  if not entry.name or '/' in entry.name or entry.name in ('.', '..'):
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       f'invalid model name {entry.name!r}')
  if not entry.base_path:
    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                       f'model {entry.name}: base_path is required')
  if entry.model_platform not in ('', 'tensorflow'):
    raise ServingError(
        grpc.StatusCode.INVALID_ARGUMENT,
        f'model {entry.name}: model_platform {entry.model_platform!r} is '
        f'not served here (only "tensorflow")')
