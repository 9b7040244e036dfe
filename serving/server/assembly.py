"""The local model server, assembled and run: what `finsent serve` starts.

A model server with TF Serving's contract, for machines where
`tensorflow_model_server` cannot run: the models' versions (model_manager)
behind one core (core), with batching (batching) and metrics (metrics),
answering TF Serving's gRPC API (grpc_api) on one port and its REST API
(rest_api) on another until SIGINT or SIGTERM. It reads the same config
files as TF Serving (serving.config_files). docs/serving.md says where this
server and TF Serving differ.
"""

import asyncio
import dataclasses
import os
import re
import signal
import threading
from typing import Optional

from absl import logging
import tensorflow as tf
from tensorflow_serving.config import model_server_config_pb2

from finsent.serving import config_files
from finsent.serving.server.batching import BatchScheduler
from finsent.serving.server.core import ModelServer
from finsent.serving.server.errors import ServingError
from finsent.serving.server.grpc_api import start_grpc_server
from finsent.serving.server.metrics import ServingMetrics
from finsent.serving.server.model_manager import ModelManager
from finsent.serving.server.rest_api import start_rest_server

# BatchingParameters' defaults in TF Serving, for --enable_batching without
# a --batching_parameters_file.
_DEFAULT_MAX_BATCH_SIZE = 1000
_DEFAULT_BATCH_TIMEOUT_MICROS = 0
_DEFAULT_MAX_ENQUEUED_BATCHES = 100
_MODEL_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')


@dataclasses.dataclass(frozen=True)
class ServerOptions:
  """What to serve and how: tensorflow_model_server's flags, by their names
  and with their meanings (`finsent serve --help` describes each), as plain
  values. bind_address and max_request_body_bytes are this server's own."""
  port: int
  rest_api_port: int  # 0: no REST API
  bind_address: str
  model_config_file: Optional[str]
  model_config_file_poll_wait_seconds: int  # 0: never re-read
  model_name: str
  model_base_path: Optional[str]
  file_system_poll_wait_seconds: int
  allow_version_labels_for_unavailable_models: bool
  enable_batching: bool
  batching_parameters_file: Optional[str]
  monitoring_config_file: Optional[str]
  tensorflow_intra_op_parallelism: int  # 0: TensorFlow picks
  tensorflow_inter_op_parallelism: int  # 0: TensorFlow picks
  max_request_body_bytes: int


def model_config_from_options(options: ServerOptions
                              ) -> model_server_config_pb2.ModelServerConfig:
  """The ModelServerConfig the options describe (the file, or one model)."""
  if options.model_config_file:
    if options.model_base_path:
      raise ValueError('give either --model_config_file or '
                       '--model_base_path, not both')
    return config_files.parse_model_config_file(options.model_config_file)
  if not options.model_base_path:
    raise ValueError('one of --model_config_file or --model_base_path is '
                     'required')
  if not _MODEL_NAME.fullmatch(options.model_name):
    raise ValueError(f'--model_name {options.model_name!r}: use letters, '
                     f'digits, ".", "_" and "-"')
  config = model_server_config_pb2.ModelServerConfig()
  config.model_config_list.config.add(
      name=options.model_name,
      base_path=os.path.abspath(options.model_base_path),
      model_platform='tensorflow')
  return config


def batching_from_options(options: ServerOptions, metrics: ServingMetrics
                          ) -> Optional[BatchScheduler]:
  if not options.enable_batching:
    if options.batching_parameters_file:
      raise ValueError('--batching_parameters_file needs --enable_batching')
    return None
  values = {'max_batch_size': _DEFAULT_MAX_BATCH_SIZE,
            'batch_timeout_micros': _DEFAULT_BATCH_TIMEOUT_MICROS,
            'max_enqueued_batches': _DEFAULT_MAX_ENQUEUED_BATCHES,
            'num_batch_threads': os.cpu_count() or 1}
  if options.batching_parameters_file:
    params = config_files.parse_batching_parameters_file(
        options.batching_parameters_file)
    for field in values:
      if params.HasField(field):
        values[field] = getattr(params, field).value
  return BatchScheduler(on_batch=metrics.observe_batch, **values)


def monitoring_path_from_options(options: ServerOptions) -> Optional[str]:
  if not options.monitoring_config_file:
    return None
  monitoring = config_files.parse_monitoring_config_file(
      options.monitoring_config_file)
  if not monitoring.prometheus_config.enable:
    return None
  return monitoring.prometheus_config.path or config_files.PROMETHEUS_PATH


def _poll_config_file(path: str, seconds: int, manager: ModelManager,
                      stop: threading.Event) -> None:
  """Re-reads models.config, as TF Serving's
  --model_config_file_poll_wait_seconds does; a bad file is logged and the
  running config kept."""
  while not stop.wait(seconds):
    try:
      manager.reload_config(config_files.parse_model_config_file(path))
    except (ValueError, ServingError) as e:
      logging.error('Keeping the running model config: %s', e)


def serve(options: ServerOptions) -> int:
  """Serves until SIGINT or SIGTERM; returns the exit status (0)."""
  metrics = ServingMetrics()
  model_config = model_config_from_options(options)
  batching = batching_from_options(options, metrics)
  monitoring_path = monitoring_path_from_options(options)
  session_config = tf.compat.v1.ConfigProto(
      intra_op_parallelism_threads=options.tensorflow_intra_op_parallelism,
      inter_op_parallelism_threads=options.tensorflow_inter_op_parallelism)
  manager = ModelManager(
      model_config, options.file_system_poll_wait_seconds, session_config,
      on_load=metrics.observe_load, on_unload=metrics.observe_unload,
      allow_version_labels_for_unavailable_models=(
          options.allow_version_labels_for_unavailable_models))
  manager.start()
  server = ModelServer(manager, metrics, batching)
  grpc_address = f'{options.bind_address}:{options.port}'
  grpc_server = start_grpc_server(server, grpc_address)
  print(f'Running gRPC ModelServer at {grpc_address} ...', flush=True)
  stop = threading.Event()
  if options.model_config_file and options.model_config_file_poll_wait_seconds:
    threading.Thread(
        target=_poll_config_file, daemon=True, name='model-config-poll',
        args=(options.model_config_file,
              options.model_config_file_poll_wait_seconds, manager, stop)
    ).start()
  loop = asyncio.new_event_loop()
  asyncio.set_event_loop(loop)
  if options.rest_api_port:
    start_rest_server(server, options.bind_address, options.rest_api_port,
                      options.max_request_body_bytes, monitoring_path)
    print(f'Exporting HTTP/REST API at:{options.bind_address}:'
          f'{options.rest_api_port} ...', flush=True)
  for signum in (signal.SIGINT, signal.SIGTERM):
    loop.add_signal_handler(signum, loop.stop)
  try:
    loop.run_forever()
  finally:
    stop.set()
    grpc_server.stop(grace=5).wait()
    server.close()
  return 0
