"""`finsent serve`: the local model server, with TF Serving's contract, for
machines where `tensorflow_model_server` cannot run.

  finsent serve --model_config_file=serving_model/models.config
  finsent serve --model_name=sentiment --model_base_path=serving_model/sentiment

Flags are tensorflow_model_server's, with its names, defaults and meanings
(not ServingConfig's knobs, which describe the production deployment); two
are this server's own: --bind_address (127.0.0.1 by default, where TF
Serving binds every interface) and --max_request_body_bytes (413 past it).
REST is on 8501 by default, as the tensorflow/serving image starts it.
docs/serving.md says where this server and TF Serving differ.
"""

import argparse
import sys
from typing import List, Optional

from finsent.configs import flag_types
from finsent.configs.serving import DEFAULT_PORTS


def _flag_bool(value: str) -> bool:
  """tensorflow_model_server's booleans: --flag, --flag=true, --flag=false."""
  if value.lower() in ('true', '1'):
    return True
  if value.lower() in ('false', '0'):
    return False
  raise argparse.ArgumentTypeError(f'expected true or false, got {value!r}')


def build_parser(prog: str = 'finsent serve') -> argparse.ArgumentParser:
  """The flags; each dest is a field of serving.server.assembly's
  ServerOptions."""
  parser = argparse.ArgumentParser(
      prog=prog, description='Serve SavedModels over TF Serving\'s gRPC and '
      'REST APIs.')
  non_negative = flag_types.non_negative_int
  parser.add_argument('--port', type=non_negative,
                      default=DEFAULT_PORTS['grpc'],
                      help='gRPC port (default: %(default)s)')
  parser.add_argument('--rest_api_port', type=non_negative,
                      default=DEFAULT_PORTS['rest'],
                      help='REST port; 0 disables REST (default: '
                      '%(default)s)')
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


def main(argv: Optional[List[str]] = None, prog: str = 'finsent serve') -> int:
  args = build_parser(prog).parse_args(argv)
  # Imported once the flags parse: --help and a bad flag answer without
  # loading TensorFlow.
  from finsent.serving.server import assembly  # pylint: disable=g-import-not-at-top
  from finsent.serving.server.errors import ServingError  # pylint: disable=g-import-not-at-top
  try:
    return assembly.serve(assembly.ServerOptions(**vars(args)))
  except (ValueError, OSError, ServingError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
