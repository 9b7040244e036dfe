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
Any Beam flag (--runner=..., --direct_num_workers=...) is passed on.
"""

import argparse
import contextlib
import dataclasses
import glob
import json
import os
import signal
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Optional

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions

from finsent.monitoring import metrics
from finsent.monitoring import stages
from finsent.monitoring.entities import AliasError
from finsent.monitoring.entities import TickerExtractor
from finsent.monitoring.headlines import DEAD_LETTERS
from finsent.monitoring.headlines import input_patterns
from finsent.monitoring.headlines import parse_json_line
from finsent.monitoring.headlines import ReadHeadlines
from finsent.monitoring.scoring import SavedModelHandler
from finsent.monitoring.scoring import ServedModelHandler
from finsent.monitoring.shocks import METRICS
from finsent.monitoring.outputs import ALERTS_FILE
from finsent.monitoring.outputs import CHANGELOGS
from finsent.monitoring.outputs import compact_jsonl
from finsent.monitoring.outputs import DEAD_LETTERS_FILE
from finsent.monitoring.outputs import SUMMARY_FILE
from finsent.monitoring.outputs import WINDOWS_FILE
from finsent.monitoring.outputs import WINDOWS_PARQUET_FILE
from finsent.monitoring.outputs import write_windows_parquet
from finsent.monitoring.watch import Watch
from finsent.data import beam_options
from finsent import configs


def _parsed_messages(messages) -> Any:
  """(where, JSON text) -> (headlines, dead letters)."""
  return messages | 'Parse' >> beam.Map(
      lambda m: parse_json_line(*m)).with_outputs(
          DEAD_LETTERS, main='headlines')


def read_source(pipeline, args) -> Any:
  """(headlines, parse dead letters) from the source the flags choose."""
  if args.input_subscription:
    return _parsed_messages(
        pipeline
        | 'PubSub' >> beam.io.ReadFromPubSub(
            subscription=args.input_subscription, with_attributes=True)
        | 'Where' >> beam.Map(lambda m: (f'pubsub:{m.message_id}',
                                         m.data.decode('utf-8'))))
  if args.kafka_topic:
    from apache_beam.io.kafka import ReadFromKafka  # a Java expansion service
    return _parsed_messages(
        pipeline
        | 'Kafka' >> ReadFromKafka(
            consumer_config={'bootstrap.servers': args.bootstrap_servers},
            topics=[args.kafka_topic], with_metadata=True)
        | 'Where' >> beam.Map(lambda r: (
            f'kafka:{r.topic}/{r.partition}/{r.offset}',
            r.value.decode('utf-8'))))
  return (pipeline | 'Files' >> beam.Create(input_patterns(args.input))
          | 'Read' >> ReadHeadlines())


def build(pipeline, args, config: configs.MonitorConfig, model_handler,
          extract_tickers: TickerExtractor) -> None:
  """The whole job on `pipeline`, writing into args.output."""
  read = read_source(pipeline, args)
  scored, score_dead_letters = read.headlines | 'Scoring' >> \
      stages.TickersAndScores(model_handler, extract_tickers)
  windows, alerts = scored | 'Monitor' >> stages.WindowsAndShocks(
      config, bounded=not _is_streaming(args))
  webhook_dead_letters = stages.write_windows_and_alerts(
      windows, alerts, args, config)
  stages.write_dead_letters(
      [stages.count_parse_failures(read[DEAD_LETTERS]), score_dead_letters,
       *webhook_dead_letters], args.output)


def _is_streaming(args) -> bool:
  """Unbounded sources: Pub/Sub, Kafka."""
  return bool(args.input_subscription or args.kafka_topic)


def compact_outputs(output_dir: str) -> Dict[str, int]:
  """Each output file with one record per id (outputs.compact_jsonl), and
  the windows as Parquet."""
  counts = {}
  for name, (id_field, order) in CHANGELOGS.items():
    path = os.path.join(output_dir, name)
    if not os.path.exists(path):
      open(path, 'w').close()
    counts[name] = compact_jsonl(path, id_field, order)
  write_windows_parquet(os.path.join(output_dir, WINDOWS_FILE),
                        os.path.join(output_dir, WINDOWS_PARQUET_FILE))
  return counts


class _Progress:
  """Prints the job's counters every `interval` seconds while it runs."""

  def __init__(self, interval: float = 10.0):
    self._interval = interval
    self._stop = threading.Event()
    self._start = time.monotonic()
    self._thread = threading.Thread(target=self._run, daemon=True)

  def __enter__(self):
    self._thread.start()
    return self

  def __exit__(self, *exc_info):
    self._stop.set()
    self._thread.join()

  def _run(self):
    scored_before = _scored_count()
    while not self._stop.wait(self._interval):
      scored = _scored_count() - scored_before
      elapsed = time.monotonic() - self._start
      print(f'monitor: {elapsed:5.0f} s: {scored:,.0f} headlines scored '
            f'({scored / elapsed:,.0f}/s), {_dead_letter_count():,.0f} dead '
            f'letters', file=sys.stderr, flush=True)


def _dead_letter_count() -> float:
  return sum(metrics.value('finsent_monitor_dead_letters_total', stage=s)
             for s in ('parse', 'late', 'score', 'webhook'))


def build_parser(prog: str) -> argparse.ArgumentParser:
  defaults = configs.MonitorConfig()
  parser = argparse.ArgumentParser(
      prog=prog, description=__doc__.split('\n\n', 2)[1],
      epilog='Other --name=value flags are Beam pipeline options.')
  source = parser.add_argument_group('source (one of)')
  source.add_argument('--input', action='append', default=[],
                      metavar='PATH', help='a headline file, glob or '
                      'directory (repeatable)')
  parser.add_argument('--watch', action='store_true', help='keep looking '
                      'for new files under --input, as a stream, until '
                      'Ctrl-C (monitoring/watch.py)')
  parser.add_argument('--file_system_poll_wait_seconds', type=float,
                      default=defaults.file_system_poll_wait_seconds,
                      help='with --watch: seconds between looks')
  source.add_argument('--input_subscription', help='Pub/Sub: projects/P/'
                      'subscriptions/S, one JSON headline per message')
  source.add_argument('--kafka_topic', help='Kafka: a topic of JSON '
                      'headlines (with --bootstrap_servers)')
  source.add_argument('--bootstrap_servers', default='localhost:9092')
  model = parser.add_argument_group('model (one of)')
  model.add_argument('--saved_model', metavar='DIR', help='score in process:'
                     ' a SavedModel, or a model base path (newest version)')
  model.add_argument('--model_url', metavar='HOST:PORT', help='score '
                     'through TF Serving (or finsent serve)')
  model.add_argument('--protocol', choices=('rest', 'grpc'), default='rest')
  model.add_argument('--model_name', default=configs.PRODUCTION_MODEL_NAME)
  parser.add_argument('--output', required=True, metavar='DIR')
  parser.add_argument('--ticker_aliases', default=configs.TICKER_ALIASES,
                      metavar='CSV', help='name,ticker rows (default: '
                      '%(default)s)')
  parser.add_argument('--window_seconds', type=int,
                      default=defaults.window_seconds)
  parser.add_argument('--period_seconds', type=int,
                      default=defaults.period_seconds)
  parser.add_argument('--allowed_lateness_seconds', type=int,
                      default=defaults.allowed_lateness_seconds)
  parser.add_argument('--max_batch_size', type=int,
                      default=defaults.max_batch_size)
  shock = parser.add_argument_group('shock detection (ShockConfig)')
  for field in dataclasses.fields(configs.ShockConfig):
    kwargs = {'choices': METRICS} if field.name == 'metric' else {}
    shock.add_argument(f'--{field.name}', type=type(field.default),
                       default=field.default, **kwargs)
  parser.add_argument('--webhook_url', help='POST each alert here as JSON')
  parser.add_argument('--metrics_port', type=int, help='serve Prometheus '
                      'metrics on this port while the job runs')
  return parser


def _config_from_args(args) -> configs.MonitorConfig:
  shock = configs.ShockConfig(**{
      f.name: getattr(args, f.name)
      for f in dataclasses.fields(configs.ShockConfig)})
  return dataclasses.replace(
      configs.MonitorConfig(), window_seconds=args.window_seconds,
      period_seconds=args.period_seconds,
      allowed_lateness_seconds=args.allowed_lateness_seconds,
      max_batch_size=args.max_batch_size,
      file_system_poll_wait_seconds=args.file_system_poll_wait_seconds,
      min_batch_size=min(configs.MonitorConfig().min_batch_size,
                         args.max_batch_size),
      shock=shock)


def _check_args(parser, args) -> None:
  sources = [bool(args.input), bool(args.input_subscription),
             bool(args.kafka_topic)]
  if sum(sources) != 1:
    parser.error('give one source: --input, --input_subscription or '
                 '--kafka_topic')
  if (args.saved_model is None) == (args.model_url is None):
    parser.error('give one model: --saved_model DIR or --model_url HOST:PORT')
  for path in args.input:
    if args.watch and not (os.path.isdir(path) or glob.has_magic(path)):
      parser.error(f'--input {path}: --watch watches a directory or a '
                   'glob, and this is neither')
    if args.watch and os.path.isdir(path) and os.path.commonpath(
        [os.path.abspath(path), os.path.abspath(args.output)]) == \
        os.path.abspath(path):
      parser.error(f'--output {args.output} is inside the watched --input '
                   f'{path}: the job would read its own outputs')
    if not args.watch and not glob.glob(input_patterns([path])[0]):
      parser.error(f'--input {path}: no such file, or no file matches')
  if args.max_batch_size < 1:
    parser.error('--max_batch_size must be >= 1')
  if args.watch and not args.input:
    parser.error('--watch watches --input: give the directory (or glob)')
  if not args.file_system_poll_wait_seconds > 0:
    parser.error('--file_system_poll_wait_seconds must be > 0')


def main(argv: Optional[List[str]] = None, prog: str = 'finsent monitor',
         stop: Optional[threading.Event] = None) -> int:
  """The job; `stop` ends a --watch (by default SIGINT and SIGTERM do)."""
  parser = build_parser(prog)
  args, beam_args = parser.parse_known_args(argv)
  _check_args(parser, args)
  try:
    # DirectRunner as Beam sets it up (in memory): the job's counters then
    # live in this process, where --metrics_port serves them.
    beam_pipeline_args = beam_options.pipeline_args(beam_args,
                                                    direct_defaults=())
  except beam_options.BeamArgsError as e:
    parser.error(str(e))
  config = _config_from_args(args)
  try:
    extract_tickers = TickerExtractor.from_csv(args.ticker_aliases)
    if args.saved_model:
      handler = SavedModelHandler(args.saved_model, config.min_batch_size,
                                  config.max_batch_size)
    else:
      handler = ServedModelHandler(
          args.model_url, args.model_name, args.protocol,
          config.timeout_seconds, config.retries, config.min_batch_size,
          config.max_batch_size)
    os.makedirs(args.output, exist_ok=True)
    options = PipelineOptions(beam_pipeline_args)
    if _is_streaming(args):
      options.view_as(StandardOptions).streaming = True
    if args.metrics_port:
      metrics.start_server(args.metrics_port)
    start = time.monotonic()
    scored_before = _scored_count()
    with _Progress():
      if args.watch:
        watch = Watch(args, config, handler, extract_tickers, options)
        with _stopped_by_signals(stop) as stopping:
          watch.run(stopping, config.file_system_poll_wait_seconds)
      else:
        _run_pipeline(args, config, handler, extract_tickers, options, prog)
    elapsed = time.monotonic() - start
  except (AliasError, FileNotFoundError, ValueError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  counts = compact_outputs(args.output)
  summary = _summary(args, config, counts, _scored_count() - scored_before,
                     elapsed)
  with open(os.path.join(args.output, SUMMARY_FILE), 'w') as f:
    json.dump(summary, f, indent=2)
  print(format_summary(summary))
  return 0


def _run_pipeline(args, config, handler, extract_tickers, options,
                  prog: str) -> None:
  pipeline = beam.Pipeline(options=options)
  build(pipeline, args, config, handler, extract_tickers)
  result = pipeline.run()
  try:
    result.wait_until_finish()
  except KeyboardInterrupt:
    # A stream runs until stopped: Ctrl-C (SIGINT) stops it, and what it
    # wrote is compacted and summarised after.
    print(f'{prog}: stopping', file=sys.stderr)
    result.cancel()


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


def _scored_count() -> float:
  return metrics.value('finsent_monitor_headlines_total', outcome='scored')


def _summary(args, config, counts, scored, elapsed) -> Dict[str, Any]:
  return {
      'input': args.input or args.input_subscription or args.kafka_topic,
      'model': args.saved_model or f'{args.protocol}://{args.model_url}/'
               f'{args.model_name}',
      'headlines_scored': int(scored),
      'dead_letters': counts[DEAD_LETTERS_FILE],
      'windows': counts[WINDOWS_FILE],
      'alerts': counts[ALERTS_FILE],
      'seconds': round(elapsed, 2),
      'headlines_per_second': round(scored / elapsed, 1) if elapsed else None,
      'config': dataclasses.asdict(config),
      'output': os.path.abspath(args.output),
  }


def incidents(alerts: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """Alerts of a key whose windows overlap, as one incident each: its first
  window's start, its last window's end, and its strongest alert."""
  found: List[Dict[str, Any]] = []
  for alert in sorted(alerts, key=lambda a: (a['key'], a['window_start'])):
    last = found[-1] if found else None
    if last and last['key'] == alert['key'] and \
        alert['window_start'] < last['end']:
      last['end'] = max(last['end'], alert['window_end'])
      last['windows'] += 1
      if alert['z_score'] > last['peak']['z_score']:
        last['peak'] = alert
    else:
      found.append({'key': alert['key'], 'start': alert['window_start'],
                    'end': alert['window_end'], 'windows': 1,
                    'peak': alert})
  return found


def format_summary(summary: Dict[str, Any]) -> str:
  with open(os.path.join(summary['output'], ALERTS_FILE),
            encoding='utf-8') as f:
    alerts = [json.loads(line) for line in f]
  lines = [
      f'Monitored {summary["headlines_scored"]:,} headlines in '
      f'{summary["seconds"]:.1f} s ({summary["headlines_per_second"]:,.0f}/s)'
      f' with {summary["model"]}',
      f'  windows: {summary["windows"]:,}   alerts: {summary["alerts"]}   '
      f'dead letters: {summary["dead_letters"]}',
  ]
  for incident in incidents(alerts):
    peak = incident['peak']
    lines.append(
        f'  SHOCK {incident["key"]:<6} {incident["start"]} .. '
        f'{incident["end"]} ({incident["windows"]} windows): peak '
        f'{peak["metric"]} {peak["value"]:.2f} vs baseline '
        f'{peak["baseline_median"]:.2f} (z {peak["z_score"]:.1f}, '
        f'{peak["count"]} headlines)')
  lines.append(f'Outputs: {summary["output"]} (finsent monitor-report '
               f'{summary["output"]} draws them)')
  return '\n'.join(lines)
