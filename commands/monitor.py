"""`finsent monitor`: the monitoring job, an Apache Beam pipeline.

  finsent monitor --input headlines.jsonl --output monitor/ \\
      --saved_model serving_model/sentiment            # in process
  finsent monitor --input 'feed/*.jsonl' --output monitor/ \\
      --model_url 127.0.0.1:8501                        # TF Serving

Reads headlines (JSONL or CSV: text, published_at, optional id and source),
finds their tickers, scores them with RunInference (the pushed SavedModel
in process, or TF Serving through its REST/gRPC API), aggregates sentiment
per ticker and for the market in sliding event-time windows, and raises an
alert when a window's negative share breaks far above its key's own
trailing baseline. Writes to --output:

  windows.jsonl       one record per key and window
  windows.parquet     the same windows as a Parquet table
  alerts.jsonl        one record per shock, with the headlines behind it
  dead_letters.jsonl  every line that could not be read or scored, and why
  summary.json        counts, throughput and the settings of the run

Sources: files, read once (batch: a replay, a day's file); a watched
directory (--input DIR --watch: new files as they land, until Ctrl-C;
monitoring/watch.py); Pub/Sub (--input_subscription) and Kafka
(--kafka_topic), streaming, with Beam's own IOs.
The knobs (MonitorConfig: windows, batches, shock detection) are flags and
may also come from a --config file. Any Beam flag (--runner=...,
--direct_num_workers=...) is passed on. docs/monitoring.md has the rest.
"""

import argparse
import contextlib
import dataclasses
import glob
import os
import signal
import sys
import threading
from typing import Iterator, List, Optional, Tuple

from finsent import configs
from finsent.configs import knobs


def build_parser(prog: str,
                 defaults: configs.MonitorConfig = configs.MonitorConfig()
                 ) -> argparse.ArgumentParser:
  """The parser, with `defaults` as the knobs' defaults; its
  `monitor_flags` and `shock_flags` read the MonitorConfig back."""
  run = configs.MonitorRun  # the defaults of the run's own flags
  parser = argparse.ArgumentParser(
      prog=prog, description=__doc__.split('\n\n', 2)[1],
      epilog='Other --name=value flags are Beam pipeline options.',
      formatter_class=argparse.RawDescriptionHelpFormatter)
  source = parser.add_argument_group('source (one of)')
  source.add_argument('--input', action='append', default=[],
                      metavar='PATH', help='a headline file, glob or '
                      'directory (repeatable)')
  parser.add_argument('--watch', action='store_true', help='keep looking '
                      'for new files under --input, as a stream, until '
                      'Ctrl-C (monitoring/watch.py)')
  source.add_argument('--input_subscription', help='Pub/Sub: projects/P/'
                      'subscriptions/S, one JSON headline per message')
  source.add_argument('--kafka_topic', help='Kafka: a topic of JSON '
                      'headlines (with --bootstrap_servers)')
  source.add_argument('--bootstrap_servers', default=run.bootstrap_servers)
  model = parser.add_argument_group('model (one of)')
  model.add_argument('--saved_model', metavar='DIR', help='score in process:'
                     ' a SavedModel, or a model base path (newest version)')
  model.add_argument('--model_url', metavar='HOST:PORT', help='score '
                     'through TF Serving (or finsent serve)')
  model.add_argument('--protocol', choices=('rest', 'grpc'),
                     default=run.protocol)
  model.add_argument('--model_name', default=run.model_name)
  parser.add_argument('--output', required=True, metavar='DIR')
  parser.add_argument('--ticker_aliases', default=run.ticker_aliases,
                      metavar='CSV', help='name,ticker rows (default: '
                      '%(default)s)')
  parser.add_argument('--webhook_url', help='POST each alert here as JSON')
  parser.add_argument('--metrics_port', type=int, help='serve Prometheus '
                      'metrics on this port while the job runs')
  knobs.add_config_flag(parser)
  parser.monitor_flags = knobs.add_flags(
      parser.add_argument_group('windows and scoring (MonitorConfig)'),
      defaults)
  parser.shock_flags = knobs.add_flags(
      parser.add_argument_group('shock detection (ShockConfig)'),
      defaults.shock)
  return parser


def _check(parser: argparse.ArgumentParser, inputs: configs.MonitorRun,
           config: configs.MonitorConfig) -> None:
  sources = [bool(inputs.input), bool(inputs.input_subscription),
             bool(inputs.kafka_topic)]
  if sum(sources) != 1:
    parser.error('give one source: --input, --input_subscription or '
                 '--kafka_topic')
  if (inputs.saved_model is None) == (inputs.model_url is None):
    parser.error('give one model: --saved_model DIR or --model_url HOST:PORT')
  # After parsing (it loads Beam): how the job itself finds the files.
  from finsent.monitoring.headlines import input_patterns  # pylint: disable=g-import-not-at-top
  for path in inputs.input:
    if inputs.watch and not (os.path.isdir(path) or glob.has_magic(path)):
      parser.error(f'--input {path}: --watch watches a directory or a '
                   'glob, and this is neither')
    if inputs.watch and os.path.isdir(path) and os.path.commonpath(
        [os.path.abspath(path), os.path.abspath(inputs.output)]) == \
        os.path.abspath(path):
      parser.error(f'--output {inputs.output} is inside the watched --input '
                   f'{path}: the job would read its own outputs')
    if not inputs.watch and not glob.glob(input_patterns([path])[0]):
      parser.error(f'--input {path}: no such file, or no file matches')
  if inputs.watch and not inputs.input:
    parser.error('--watch watches --input: give the directory (or glob)')
  if not config.file_system_poll_wait_seconds > 0:
    parser.error('--file_system_poll_wait_seconds must be > 0')


def parse(argv: Optional[List[str]], prog: str
          ) -> Tuple[configs.MonitorRun, configs.MonitorConfig, List[str]]:
  """(the run's inputs and outputs, its knobs, the Beam pipeline args) of
  argv and its --config file; exits 2 with argparse's message on a bad
  flag, Beam option or config file."""
  parser = knobs.parser_with_config(
      argv, configs.MonitorConfig(), lambda d: build_parser(prog, d))
  args, beam_args = parser.parse_known_args(argv)
  config = parser.monitor_flags.read(args)
  config = dataclasses.replace(
      config, shock=parser.shock_flags.read(args),
      min_batch_size=min(config.min_batch_size, config.max_batch_size))
  inputs = configs.MonitorRun(
      output=args.output, input=tuple(args.input), watch=args.watch,
      input_subscription=args.input_subscription,
      kafka_topic=args.kafka_topic, bootstrap_servers=args.bootstrap_servers,
      saved_model=args.saved_model, model_url=args.model_url,
      protocol=args.protocol, model_name=args.model_name,
      ticker_aliases=args.ticker_aliases, webhook_url=args.webhook_url,
      metrics_port=args.metrics_port)
  _check(parser, inputs, config)
  from finsent.data import beam_options  # pylint: disable=g-import-not-at-top
  try:
    # DirectRunner as Beam sets it up (in memory): the job's counters then
    # live in this process, where --metrics_port serves them.
    pipeline_args = beam_options.pipeline_args(beam_args, direct_defaults=())
  except beam_options.BeamArgsError as e:
    parser.error(str(e))
  return inputs, config, pipeline_args


def main(argv: Optional[List[str]] = None, prog: str = 'finsent monitor',
         stop: Optional[threading.Event] = None) -> int:
  """The job; `stop` ends a --watch (by default SIGINT and SIGTERM do)."""
  inputs, config, pipeline_args = parse(argv, prog)
  # After parsing: `--help` loads no Beam or TensorFlow.
  from finsent.monitoring import job  # pylint: disable=g-import-not-at-top
  stopping = (_stopped_by_signals(stop) if inputs.watch
              else contextlib.nullcontext(stop))
  try:
    with stopping as stop_event:
      summary = job.run(inputs, config, pipeline_args, stop_event)
  except (FileNotFoundError, ValueError) as e:  # entities.AliasError too
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  print(job.format_summary(summary))
  return 0


@contextlib.contextmanager
def _stopped_by_signals(stop: Optional[threading.Event]
                        ) -> Iterator[threading.Event]:
  """`stop`, or an event SIGINT and SIGTERM set while in the block (a
  watch then finishes its poll and drains; a second signal stops it as
  the signal would)."""
  if stop is not None:
    yield stop
    return
  stopping = threading.Event()

  def request_stop(signum, _):
    print(f'monitor: {signal.Signals(signum).name}: stopping after this '
          'poll', file=sys.stderr, flush=True)
    stopping.set()
    signal.signal(signum, previous[signum])
  previous = {s: signal.signal(s, request_stop)
              for s in (signal.SIGINT, signal.SIGTERM)}
  try:
    yield stopping
  finally:
    for signum, handler in previous.items():
      signal.signal(signum, handler)


if __name__ == '__main__':
  sys.exit(main())
