"""`finsent profile-report`: where each model run's training steps went.

  finsent profile-report MODEL_RUN [MODEL_RUN ...] [--chart FILE]

Reads the TensorBoard profile a Trainer captured (models.profiling) with
the converters TensorBoard's profile plugin uses, and prints, per model
run: the average step time; its split into compute, input and other (host
idle, Python and framework overhead); the utilisation of the device, or of
TensorFlow's CPU compute threads; the ops with the most self time; and
whether the run is input-bound. Two or more runs are printed side by side
and, with --chart, drawn as a PNG.
"""

import argparse
import json
import sys
from typing import List, Optional


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent profile-report') -> int:
  parser = argparse.ArgumentParser(
      prog=prog, description=__doc__.split('\n\n', 2)[2],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('model_runs', nargs='+', metavar='MODEL_RUN',
                      help="a Trainer's model_run dir (its TensorBoard "
                      'logdir)')
  parser.add_argument('--chart', help='write a PNG comparing the runs here')
  parser.add_argument('--json', help='write the reports as JSON here')
  args = parser.parse_args(argv)
  # After parsing: `--help` loads no TensorFlow.
  from finsent.commands.reports import profile
  from finsent.models import training_profile
  try:
    reports = [training_profile.read_profile(path) for path in args.model_runs]
  except training_profile.ProfileError as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  print(profile.format_reports(reports))
  if args.chart:
    profile.write_chart(reports, args.chart)
    print(f'\nChart: {args.chart}')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump([r.to_json() for r in reports], f, indent=2)
  return 0


if __name__ == '__main__':
  sys.exit(main())
