"""`finsent monitor-report`: a static HTML page over a monitor job's output.

  finsent monitor-report DIR [--output_dir OUT] [--max_tickers N]

Reads what `finsent monitor` wrote in DIR (windows.jsonl, alerts.jsonl and
dead_letters.jsonl) and writes into OUT (default DIR/report): one timeline
PNG per key, the market stream ("*") first, then the tickers with alerts,
then the others by headline volume, at most N tickers; and index.html, a
self-contained page with the time range and counts, the alerts with their
top headlines, the timelines, and the dead letters by stage and reason.
Open OUT/index.html in a browser, or serve OUT with any static web server.
"""

import argparse
import os
import sys
from typing import List, Optional

from finsent.configs import flag_types

DEFAULT_MAX_TICKERS = 20


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent monitor-report') -> int:
  parser = argparse.ArgumentParser(
      prog=prog, description=__doc__.split('\n\n', 2)[2],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('directory', metavar='DIR',
                      help='the --output dir of a `finsent monitor` run')
  parser.add_argument('--output_dir', metavar='OUT',
                      help='where to write the report (default: DIR/report)')
  parser.add_argument('--max_tickers', type=flag_types.non_negative_int,
                      default=DEFAULT_MAX_TICKERS, metavar='N',
                      help='timelines for at most this many tickers, besides '
                      'the market (default: %(default)s)')
  args = parser.parse_args(argv)
  # After parsing: `--help` loads no pyarrow or matplotlib.
  from finsent.commands.reports import monitor as report  # pylint: disable=g-import-not-at-top
  from finsent.monitoring.outputs import ALERTS_FILE  # pylint: disable=g-import-not-at-top
  from finsent.monitoring.outputs import ChangelogError  # pylint: disable=g-import-not-at-top
  output_dir = args.output_dir or os.path.join(args.directory, 'report')
  try:
    output = report.read_monitor_output(args.directory)
  except (report.ReportError, ChangelogError, OSError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  if not output.alerts_file_found:
    print(f'{prog}: warning: no {ALERTS_FILE} in {args.directory}; '
          'reporting no alerts', file=sys.stderr)
  written = report.write_report(output, output_dir, args.max_tickers)
  print(f'Report: {written.index_path} '
        f'({report.plural(len(output.alerts), "alert")}, '
        f'{report.plural(len(output.dead_letters), "dead letter")})')
  print(f'Timelines in {output_dir}: ' +
        (', '.join(written.charts.values()) or 'none'))
  if written.left_out:
    print(f'Left out (--max_tickers {args.max_tickers}): '
          + ', '.join(written.left_out))
  return 0


if __name__ == '__main__':
  sys.exit(main())
