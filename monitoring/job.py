"""The monitoring job, an Apache Beam pipeline, as library code.

`run(inputs, config, pipeline_args)` runs one monitoring run: what
`finsent monitor` (commands/monitor.py, which says what a run reads and
writes) parses its flags into. `build` lays the job out on a pipeline,
`format_summary` words the summary a run writes.
"""

import dataclasses
import json
import os
import sys
import threading
import time
from typing import Any, Dict, List, Optional, Sequence

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions

from finsent.monitoring import metrics
from finsent.monitoring import stages
from finsent.monitoring.entities import TickerExtractor
from finsent.monitoring.headlines import DEAD_LETTERS
from finsent.monitoring.headlines import input_patterns
from finsent.monitoring.headlines import parse_json_line
from finsent.monitoring.headlines import ReadHeadlines
from finsent.monitoring.scoring import SavedModelHandler
from finsent.monitoring.scoring import ServedModelHandler
from finsent.monitoring.outputs import ALERTS_FILE
from finsent.monitoring.outputs import CHANGELOGS
from finsent.monitoring.outputs import compact_jsonl
from finsent.monitoring.outputs import DEAD_LETTERS_FILE
from finsent.monitoring.outputs import SUMMARY_FILE
from finsent.monitoring.outputs import WINDOWS_FILE
from finsent.monitoring.outputs import WINDOWS_PARQUET_FILE
from finsent.monitoring.outputs import write_windows_parquet
from finsent.monitoring.watch import Watch
from finsent import configs


def _parsed_messages(messages) -> Any:
  """(where, JSON text) -> (headlines, dead letters)."""
  return messages | 'Parse' >> beam.Map(
      lambda m: parse_json_line(*m)).with_outputs(
          DEAD_LETTERS, main='headlines')


def read_source(pipeline, inputs: configs.MonitorRun) -> Any:
  """(headlines, parse dead letters) from the run's source."""
  if inputs.input_subscription:
    return _parsed_messages(
        pipeline
        | 'PubSub' >> beam.io.ReadFromPubSub(
            subscription=inputs.input_subscription, with_attributes=True)
        | 'Where' >> beam.Map(lambda m: (f'pubsub:{m.message_id}',
                                         m.data.decode('utf-8'))))
  if inputs.kafka_topic:
    from apache_beam.io.kafka import ReadFromKafka  # a Java expansion service
    return _parsed_messages(
        pipeline
        | 'Kafka' >> ReadFromKafka(
            consumer_config={'bootstrap.servers': inputs.bootstrap_servers},
            topics=[inputs.kafka_topic], with_metadata=True)
        | 'Where' >> beam.Map(lambda r: (
            f'kafka:{r.topic}/{r.partition}/{r.offset}',
            r.value.decode('utf-8'))))
  return (pipeline | 'Files' >> beam.Create(input_patterns(inputs.input))
          | 'Read' >> ReadHeadlines())


def build(pipeline, inputs: configs.MonitorRun, config: configs.MonitorConfig,
          model_handler, extract_tickers: TickerExtractor) -> None:
  """The whole job on `pipeline`, writing into inputs.output."""
  read = read_source(pipeline, inputs)
  scored, score_dead_letters = read.headlines | 'Scoring' >> \
      stages.TickersAndScores(model_handler, extract_tickers)
  windows, alerts = scored | 'Monitor' >> stages.WindowsAndShocks(
      config, bounded=not inputs.streaming)
  webhook_dead_letters = stages.write_windows_and_alerts(
      windows, alerts, inputs.output, inputs.webhook_url, config)
  stages.write_dead_letters(
      [stages.count_parse_failures(read[DEAD_LETTERS]), score_dead_letters,
       *webhook_dead_letters], inputs.output)


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


def run(inputs: configs.MonitorRun, config: configs.MonitorConfig,
        pipeline_args: Sequence[str],
        stop: Optional[threading.Event] = None) -> Dict[str, Any]:
  """Runs the job on `inputs` with Beam's `pipeline_args`, compacts its
  outputs, writes its summary.json and returns the summary.

  Files are read once; a watch (inputs.watch) polls until `stop` is set
  (None: until the process ends), then drains; a stream (Pub/Sub, Kafka)
  runs until Ctrl-C. Raises ValueError (entities.AliasError included) or
  FileNotFoundError on an alias file or a model it cannot use.
  """
  extract_tickers = TickerExtractor.from_csv(inputs.ticker_aliases)
  if inputs.saved_model:
    handler = SavedModelHandler(inputs.saved_model, config.min_batch_size,
                                config.max_batch_size)
  else:
    handler = ServedModelHandler(
        inputs.model_url, inputs.model_name, inputs.protocol,
        config.timeout_seconds, config.retries, config.min_batch_size,
        config.max_batch_size)
  os.makedirs(inputs.output, exist_ok=True)
  options = PipelineOptions(list(pipeline_args))
  if inputs.streaming:
    options.view_as(StandardOptions).streaming = True
  if inputs.metrics_port:
    metrics.start_server(inputs.metrics_port)
  start = time.monotonic()
  scored_before = _scored_count()
  with _Progress():
    if inputs.watch:
      watch = Watch(inputs.input, inputs.output, inputs.webhook_url, config,
                    handler, extract_tickers, options)
      watch.run(stop or threading.Event(),
                config.file_system_poll_wait_seconds)
    else:
      _run_pipeline(inputs, config, handler, extract_tickers, options)
  elapsed = time.monotonic() - start
  counts = compact_outputs(inputs.output)
  summary = _summary(inputs, config, counts, _scored_count() - scored_before,
                     elapsed)
  with open(os.path.join(inputs.output, SUMMARY_FILE), 'w') as f:
    json.dump(summary, f, indent=2)
  return summary


def _run_pipeline(inputs, config, handler, extract_tickers, options) -> None:
  pipeline = beam.Pipeline(options=options)
  build(pipeline, inputs, config, handler, extract_tickers)
  result = pipeline.run()
  try:
    result.wait_until_finish()
  except KeyboardInterrupt:
    # A stream runs until stopped: Ctrl-C (SIGINT) stops it, and what it
    # wrote is compacted and summarised after.
    print('monitor: stopping', file=sys.stderr)
    result.cancel()


def _scored_count() -> float:
  return metrics.value('finsent_monitor_headlines_total', outcome='scored')


def _summary(inputs: configs.MonitorRun, config: configs.MonitorConfig,
             counts: Dict[str, int], scored: float,
             elapsed: float) -> Dict[str, Any]:
  return {
      'input': (list(inputs.input) or inputs.input_subscription or
                inputs.kafka_topic),
      'model': inputs.saved_model or f'{inputs.protocol}://'
               f'{inputs.model_url}/{inputs.model_name}',
      'headlines_scored': int(scored),
      'dead_letters': counts[DEAD_LETTERS_FILE],
      'windows': counts[WINDOWS_FILE],
      'alerts': counts[ALERTS_FILE],
      'seconds': round(elapsed, 2),
      'headlines_per_second': round(scored / elapsed, 1) if elapsed else None,
      'config': dataclasses.asdict(config),
      'output': os.path.abspath(inputs.output),
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


def _peak_figures(alert: Dict[str, Any]) -> str:
  """An alert's strongest test in words: a count against the Poisson rate
  it was tested on (p), a share or mean score against the median (z)."""
  if 'baseline_rate' in alert:
    return (f'{alert["value"]} negative headlines vs a rate of '
            f'{alert["baseline_rate"]:.2f} a window '
            f'(p {alert["tail_probability"]:.2g})')
  return (f'{alert["metric"]} {alert["value"]:.2f} vs baseline '
          f'{alert["baseline_median"]:.2f} (z {alert["z_score"]:.1f})')


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
        f'{_peak_figures(peak)} ({peak["count"]} headlines)')
  lines.append(f'Outputs: {summary["output"]} (finsent monitor-report '
               f'{summary["output"]} draws them)')
  return '\n'.join(lines)
