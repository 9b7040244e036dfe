"""`finsent bench`: how well the RNN and the Transformer use parallel hardware.

  finsent bench --output DIR [--quick] [--device cpu|gpu] [--xla] ...

The measurement is benchmarks/parallelism_benchmark.py (its docstring says
what and how); this parses the sweep's flags into its settings.
"""

import argparse
import os
import sys
from typing import Dict, List, Optional

# NumPy and the standard library only: TensorFlow starts in the
# measurement's own processes.
from finsent.benchmarks import parallelism_benchmark as benchmark
from finsent.configs import flag_types


def build_parser(prog: str) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=prog, description=benchmark.__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--output', required=True,
                      help='folder for results.json, results.md and the '
                      'PNGs')
  parser.add_argument('--quick', action='store_true',
                      help='a small sweep, for a smoke test')
  parser.add_argument('--device', choices=benchmark.DEVICES, default='cpu',
                      help='cpu (default) or gpu (the first GPU; no thread '
                      'sweep)')
  parser.add_argument('--dtype', choices=benchmark.DTYPES,
                      default='float32',
                      help='Keras dtype policy (default float32)')
  parser.add_argument('--xla', action='store_true',
                      help='compile(jit_compile=True); Keras falls back for '
                      'a model that does not support it (a cuDNN RNN)')
  for key, what in (('sequence_lengths', 'sequence lengths to sweep'),
                    ('batch_sizes', 'batch sizes to sweep'),
                    ('threads', 'CPU thread counts, one process each')):
    parser.add_argument(
        f'--{key}', nargs='+', type=flag_types.positive_int, metavar='N',
        help=f'{what}; default {" ".join(map(str, benchmark.FULL[key]))} '
        f'({" ".join(map(str, benchmark.QUICK[key]))} with --quick)')
  for key, what in (('repeats', 'timed repeats per cell, model and mode'),
                    ('steps', 'steps per repeat'),
                    ('warmup_steps', 'untimed steps per model and mode '
                     'before a cell\'s repeats')):
    parser.add_argument(f'--{key}', type=flag_types.positive_int, metavar='N',
                        help=f'{what}; default {benchmark.FULL[key]} '
                        f'({benchmark.QUICK[key]} with --quick)')
  parser.add_argument('--match_length', type=flag_types.positive_int,
                      default=128, metavar='N', help='sequence length at which '
                      'rnn_matched matches the Transformer\'s forward '
                      'FLOPs/token (default 128)')
  parser.add_argument('--peak_matrix_size', type=flag_types.positive_int,
                      default=2048, metavar='N',
                      help='side of the peak matmul (default 2048; a GPU '
                      'needs 8192 or so to reach its peak)')
  return parser


def parse_settings(argv: List[str], prog: str) -> Dict:
  """The sweep's settings from the flags; an inconsistent set of flags is
  an argparse error (exit 2)."""
  parser = build_parser(prog)
  args = parser.parse_args(argv)
  defaults = benchmark.QUICK if args.quick else benchmark.FULL
  settings = {key: defaults[key] if getattr(args, key) is None
              else getattr(args, key) for key in benchmark.FULL}
  for key in ('sequence_lengths', 'batch_sizes', 'threads'):
    settings[key] = sorted(set(settings[key]))
  if args.device == 'gpu':
    if args.threads is not None:
      parser.error('--threads does not apply to --device gpu')
    settings['threads'] = [None]
  elif max(settings['threads']) > len(os.sched_getaffinity(0)):
    parser.error(f'--threads: this process may use '
                 f'{len(os.sched_getaffinity(0))} CPU(s), got '
                 f'{max(settings["threads"])}')
  settings.update(device=args.device, dtype=args.dtype, xla=args.xla,
                  match_length=args.match_length,
                  peak_matrix_size=args.peak_matrix_size,
                  output=args.output)
  return settings


def main(argv: Optional[List[str]] = None, prog: str = 'finsent bench') -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  return benchmark.run(parse_settings(argv, prog), prog, argv)


if __name__ == '__main__':
  sys.exit(main())
