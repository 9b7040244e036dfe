"""`finsent replay`: labelled data -> a timestamped headline stream with an
injected negative-sentiment shock, to demo and test the monitoring job.

  finsent replay --data PATH --output FILE
                 [--shock TICKER | --shock_topic NAME | --no_shock]
                 [--config FILE] [flags]

monitoring/replay.py says how the stream is made; the flags' defaults are
ReplayConfig's (configs/monitoring.py), or a --config file's.
"""

import argparse
import dataclasses
import sys
from typing import List, Optional, Tuple

from finsent import configs
from finsent.configs import knobs


def _tickers(value: str) -> Tuple[str, ...]:
  """Comma-separated tickers; replay.check_config says which is not one."""
  return tuple(ticker.strip() for ticker in value.split(','))


def build_parser(prog: str,
                 defaults: configs.ReplayConfig = configs.ReplayConfig()
                 ) -> argparse.ArgumentParser:
  """The parser, with `defaults` as the flags' defaults; its
  `replay_flags` read the ReplayConfig back."""
  parser = argparse.ArgumentParser(
      prog=prog, description='Labelled data -> a timestamped headline '
      'stream (JSONL) with a negative-sentiment shock for one ticker, for '
      'the monitoring job.')
  parser.add_argument('--data', required=True,
                      help='a data file, or a folder of them (a train/valid '
                      'folder is read train first)')
  parser.add_argument('--output', required=True, help='the JSONL to write')
  knobs.add_config_flag(parser)
  shock = parser.add_mutually_exclusive_group()
  shock.add_argument('--shock', metavar='TICKER',
                     help='the shocked ticker (default: the first of '
                     '--tickers)')
  shock.add_argument('--shock_topic', metavar='NAME',
                     help="a topic's shock instead (e.g. 'Fed | Central "
                     "Banks'): negative records of that topic, which the "
                     'data must have (records with a label and a topic)')
  shock.add_argument('--no_shock', action='store_true',
                     help='write the flat stream, with no shock')
  # A tuple of any length, which knobs.add_flags does not make a flag of.
  parser.add_argument(
      '--tickers', type=_tickers, default=','.join(defaults.tickers),
      help=f'{knobs.knob_of(configs.ReplayConfig, "tickers").help}, '
      'comma-separated (default: %(default)s)')
  parser.replay_flags = knobs.add_flags(parser, defaults)
  return parser


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent replay') -> int:
  parser = knobs.parser_with_config(
      argv, configs.ReplayConfig(), lambda d: build_parser(prog, d))
  args = parser.parse_args(argv)
  config = dataclasses.replace(parser.replay_flags.read(args),
                               tickers=args.tickers)
  shock_topic = args.shock_topic
  shock_ticker = (None if args.no_shock or shock_topic is not None else
                  config.tickers[0] if args.shock is None else args.shock)
  # Library code after parsing, as in every command: `--help` stays fast
  # whatever the library comes to import.
  from finsent.monitoring import replay  # pylint: disable=g-import-not-at-top
  try:
    # Before reading the data, so that a mistyped flag fails at once.
    replay.check_config(config, shock_ticker, shock_topic)
    records, not_read = replay.read_data(args.data)
    rows = replay.replay(records, config, shock_ticker, shock_topic)
    replay.write_jsonl(rows, args.output)
  except (ValueError, OSError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  print(replay.summary(rows, config, shock_ticker, args.output, shock_topic))
  if not_read:
    print(f'  not read (in neither split): {", ".join(not_read)}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
