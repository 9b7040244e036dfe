"""Prometheus metrics of the monitoring job (dashboard:
monitoring/grafana/finsent-monitor.json).

The job's DoFns update them in the process that runs them: with the
DirectRunner's default in-memory mode that is the job's own process, which
serves them on --metrics_port. They live in a registry of their own.
"""

import prometheus_client

REGISTRY = prometheus_client.CollectorRegistry()

HEADLINES = prometheus_client.Counter(
    'finsent_monitor_headlines', 'Headlines by outcome: scored or '
    'dead_letter.', ['outcome'], registry=REGISTRY)
DEAD_LETTERS = prometheus_client.Counter(
    'finsent_monitor_dead_letters', 'Records that could not be read, scored '
    'or delivered, by stage.', ['stage'], registry=REGISTRY)
ALERTS = prometheus_client.Counter(
    'finsent_monitor_alerts', 'Negative-sentiment shock alerts raised, by '
    'key (a ticker, topic:<name> for a topic, or * for the market).',
    ['key'], registry=REGISTRY)
SCORING_LATENCY = prometheus_client.Histogram(
    'finsent_monitor_scoring_latency_seconds', 'Time to score one batch of '
    'headlines (in process or through the server, retries included).',
    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10,
             30), registry=REGISTRY)
BATCH_SIZE = prometheus_client.Histogram(
    'finsent_monitor_batch_size', 'Headlines per scoring batch.',
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024), registry=REGISTRY)
WINDOW_SHARE_NEGATIVE = prometheus_client.Gauge(
    'finsent_monitor_window_share_negative', 'Share of negative headlines in '
    'the window of each key written last.', ['key'], registry=REGISTRY)
LATE_HEADLINES = prometheus_client.Counter(
    'finsent_monitor_late_headlines', 'Window updates caused by headlines '
    'that came after the watermark (late panes).', registry=REGISTRY)


def start_server(port: int) -> None:
  """Serves /metrics on `port` (all interfaces, as Prometheus scrapes)."""
  prometheus_client.start_http_server(port, registry=REGISTRY)


def value(name: str, **labels) -> float:
  """A sample's current value (0 when it has none yet)."""
  return REGISTRY.get_sample_value(name, labels) or 0.0
