"""`finsent serve`: a model server with TF Serving's contract, for machines
where `tensorflow_model_server` cannot run.

  finsent serve --model_config_file=serving_model/models.config
  finsent serve --model_name=sentiment --model_base_path=serving_model/sentiment

Flags are tensorflow_model_server's, with its meanings; two are this
server's own: --bind_address (127.0.0.1 by default, where TF Serving binds
every interface) and --max_request_body_bytes (413 past it). REST is on
8501 by default, as the tensorflow/serving image starts it. The README's
"Serving" section says where this server and TF Serving differ.
"""

import argparse
import asyncio
import os
import re
import signal
import sys
import threading
from typing import List, Optional

from absl import logging
import tensorflow as tf
from tensorflow_serving.config import model_server_config_pb2

from finsent.configs import flag_types
from finsent.serving import model_server_config
from finsent.serving.batching import BatchScheduler
from finsent.serving.core import ModelServer
from finsent.serving.errors import ServingError
from finsent.serving.grpc_api import start_grpc_server
from finsent.serving.metrics import ServingMetrics
from finsent.serving.model_manager import ModelManager
from finsent.serving.rest_api import start_rest_server

# BatchingParameters' defaults in TF Serving, for --enable_batching without
# a --batching_parameters_file.
_DEFAULT_MAX_BATCH_SIZE = 1000
_DEFAULT_BATCH_TIMEOUT_MICROS = 0
_DEFAULT_MAX_ENQUEUED_BATCHES = 100
_MODEL_NAME = re.compile(r'[A-Za-z0-9][A-Za-z0-9_.-]*')


def _flag_bool(value: str) -> bool:
  """tensorflow_model_server's booleans: --flag, --flag=true, --flag=false."""
  if value.lower() in ('true', '1'):
    return True
  if value.lower() in ('false', '0'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, got {value!r}')


def build_parser(prog: str = 'finsent serve') -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=prog, description='Serve SavedModels over TF Serving\'s gRPC and '
      'REST APIs.')
  non_negative = flag_types.non_negative_int
  parser.add_argument('--port', type=non_negative, default=8500,
                      help='gRPC port (default: 8500)')
  parser.add_argument('--rest_api_port', type=non_negative, default=8501,
                      help='REST port; 0 disables REST (default: 8501)')
  parser.add_argument('--bind_address', default='127.0.0.1',
                      help='address both ports bind (default: 127.0.0.1; '
                      '0.0.0.0 for every interface)')
  parser.add_argument('--model_config_file',
                      help='ModelServerConfig text proto (models.config); '
                      'replaces --model_name/--model_base_path')
  parser.add_argument('--model_config_file_poll_wait_seconds',
                      type=non_negative, default=0,
                      help='re-read --model_config_file this often; 0: never')
  parser.add_argument('--model_name', default='default')
  parser.add_argument('--model_base_path',
                      help='directory of integer version subdirectories')
  parser.add_argument('--file_system_poll_wait_seconds', type=non_negative,
                      default=1, help='how often base paths are polled for '
                      'new versions (default: 1)')
  parser.add_argument('--allow_version_labels_for_unavailable_models',
                      type=_flag_bool, nargs='?', const=True, default=False,
                      help='accept labels on versions not loaded yet (at '
                      'start, every label is on one)')
  parser.add_argument('--enable_batching', type=_flag_bool, nargs='?',
                      const=True, default=False)
  parser.add_argument('--batching_parameters_file',
                      help='BatchingParameters text proto (batching.config)')
  parser.add_argument('--monitoring_config_file',
                      help='MonitoringConfig text proto: enables Prometheus '
                      'metrics on the REST port')
  parser.add_argument('--tensorflow_intra_op_parallelism', type=non_negative,
                      default=0, help='threads per op; 0: TensorFlow picks')
  parser.add_argument('--tensorflow_inter_op_parallelism', type=non_negative,
                      default=0, help='ops run at once; 0: TensorFlow picks')
  parser.add_argument('--max_request_body_bytes', type=non_negative,
                      default=16 * 2 ** 20,
                      help='REST bodies past this are refused with 413 '
                      '(default: 16 MiB)')
  return parser


def model_config_from_flags(args) -> model_server_config_pb2.ModelServerConfig:
  """The ModelServerConfig the flags describe (the file, or one model)."""
  if args.model_config_file:
    if args.model_base_path:
      raise ValueError('give either --model_config_file or '
                       '--model_base_path, not both')
    return model_server_config.parse_model_config_file(args.model_config_file)
  if not args.model_base_path:
    raise ValueError('one of --model_config_file or --model_base_path is '
                     'required')
  if not _MODEL_NAME.fullmatch(args.model_name):
    raise ValueError(f'--model_name {args.model_name!r}: use letters, '
                     f'digits, ".", "_" and "-"')
  config = model_server_config_pb2.ModelServerConfig()
  config.model_config_list.config.add(
      name=args.model_name, base_path=os.path.abspath(args.model_base_path),
      model_platform='tensorflow')
  return config


def batching_from_flags(args, metrics: ServingMetrics
                        ) -> Optional[BatchScheduler]:
  if not args.enable_batching:
    if args.batching_parameters_file:
      raise ValueError('--batching_parameters_file needs --enable_batching')
    return None
  values = {'max_batch_size': _DEFAULT_MAX_BATCH_SIZE,
            'batch_timeout_micros': _DEFAULT_BATCH_TIMEOUT_MICROS,
            'max_enqueued_batches': _DEFAULT_MAX_ENQUEUED_BATCHES,
            'num_batch_threads': os.cpu_count() or 1}
  if args.batching_parameters_file:
    params = model_server_config.parse_batching_parameters_file(
        args.batching_parameters_file)
    for field in values:
      if params.HasField(field):
        values[field] = getattr(params, field).value
  return BatchScheduler(on_batch=metrics.observe_batch, **values)


def monitoring_path_from_flags(args) -> Optional[str]:
  if not args.monitoring_config_file:
    return None
  monitoring = model_server_config.parse_monitoring_config_file(
      args.monitoring_config_file)
  if not monitoring.prometheus_config.enable:
    return None
  return (monitoring.prometheus_config.path or
          model_server_config.PROMETHEUS_PATH)


def _poll_config_file(path: str, seconds: int, manager: ModelManager,
                      stop: threading.Event) -> None:
  """Re-reads models.config, as TF Serving's
  --model_config_file_poll_wait_seconds does; a bad file is logged and the
  running config kept."""
  while not stop.wait(seconds):
    try:
      manager.reload_config(model_server_config.parse_model_config_file(path))
    except (ValueError, ServingError) as e:
      logging.error('Keeping the running model config: %s', e)


def serve(args) -> int:
  metrics = ServingMetrics()
  model_config = model_config_from_flags(args)
  batching = batching_from_flags(args, metrics)
  monitoring_path = monitoring_path_from_flags(args)
  session_config = tf.compat.v1.ConfigProto(
      intra_op_parallelism_threads=args.tensorflow_intra_op_parallelism,
      inter_op_parallelism_threads=args.tensorflow_inter_op_parallelism)
  manager = ModelManager(
      model_config, args.file_system_poll_wait_seconds, session_config,
      on_load=metrics.observe_load, on_unload=metrics.observe_unload,
      allow_version_labels_for_unavailable_models=(
          args.allow_version_labels_for_unavailable_models))
  manager.start()
  server = ModelServer(manager, metrics, batching)
  grpc_address = f'{args.bind_address}:{args.port}'
  grpc_server = start_grpc_server(server, grpc_address)
  print(f'Running gRPC ModelServer at {grpc_address} ...', flush=True)
  stop = threading.Event()
  if args.model_config_file and args.model_config_file_poll_wait_seconds:
    threading.Thread(
        target=_poll_config_file, daemon=True, name='model-config-poll',
        args=(args.model_config_file,
              args.model_config_file_poll_wait_seconds, manager, stop)
    ).start()
  loop = asyncio.new_event_loop()
  asyncio.set_event_loop(loop)
  if args.rest_api_port:
    start_rest_server(server, args.bind_address, args.rest_api_port,
                      args.max_request_body_bytes, monitoring_path)
    print(f'Exporting HTTP/REST API at:{args.bind_address}:'
          f'{args.rest_api_port} ...', flush=True)
  for signum in (signal.SIGINT, signal.SIGTERM):
    loop.add_signal_handler(signum, loop.stop)
  try:
    loop.run_forever()
  finally:
    stop.set()
    grpc_server.stop(grace=5).wait()
    server.close()
  return 0


def main(argv: Optional[List[str]] = None, prog: str = 'finsent serve') -> int:
  parser = build_parser(prog)
  args = parser.parse_args(argv)
  try:
    return serve(args)
  except (ValueError, OSError, ServingError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2


if __name__ == '__main__':
  sys.exit(main(prog='python -m serving.server'))
