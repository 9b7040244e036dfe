"""`finsent bench-peak`: what holds the Transformer's training below the
matmul peak, and what raises it.

  finsent bench-peak --output DIR [--quick] [--variants NAME ...] ...

The study is benchmarks/peak_study.py (its docstring says what and how);
this parses its flags into its settings.
"""

import argparse
import os
import sys
from typing import Dict, List, Optional

# NumPy and the standard library only: TensorFlow starts in the study's
# own process.
from finsent.benchmarks import peak_study as study
from finsent.configs import flag_types


def build_parser(prog: str) -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=prog, description=study.__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--output', required=True,
                      help='folder for results.json, results.md and '
                      f'{study.PNG_FILE}')
  parser.add_argument('--quick', action='store_true',
                      help='a tiny cell, for a smoke test')
  parser.add_argument('--variants', nargs='+', choices=study.VARIANT_NAMES,
                      metavar='NAME',
                      help='the variants to run, of: '
                      f'{", ".join(study.VARIANT_NAMES)} (default all; '
                      f'{study.VARIANTS[0].name} always runs, first: the '
                      'others are read against it)')
  for key, what in (('sequence_length', 'tokens per sequence'),
                    ('batch_size', 'sequences per batch (the "batch x4" '
                     'variant takes 4 times it)'),
                    ('threads', 'CPU threads (intra- and inter-op)'),
                    ('repeats', 'timed repeats per model and mode'),
                    ('steps', 'steps per repeat'),
                    ('warmup_steps', 'untimed steps before the repeats'),
                    ('profile_steps', 'Transformer training steps profiled'),
                    ('peak_matrix_size', 'side of the peak matmul')):
    parser.add_argument(f'--{key}', type=flag_types.positive_int, metavar='N',
                        help=f'{what}; default {study.FULL[key]} '
                        f'({study.QUICK[key]} with --quick)')
  return parser


def parse_settings(argv: List[str], prog: str) -> Dict:
  parser = build_parser(prog)
  args = parser.parse_args(argv)
  defaults = study.QUICK if args.quick else study.FULL
  settings = {key: defaults[key] if getattr(args, key) is None
              else getattr(args, key) for key in study.FULL}
  cpus = len(os.sched_getaffinity(0))
  if settings['threads'] > cpus:
    parser.error(f'--threads: this process may use {cpus} CPU(s), got '
                 f'{settings["threads"]}')
  chosen = set(args.variants or study.VARIANT_NAMES) | {
      study.VARIANTS[0].name}
  settings.update(output=args.output,
                  variants=[v.name for v in study.VARIANTS if v.name in chosen])
  return settings


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent bench-peak') -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  return study.run(parse_settings(argv, prog), prog, argv)


if __name__ == '__main__':
  sys.exit(main())
