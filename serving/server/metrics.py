"""Prometheus metrics of the model server, named as TF Serving names them.

TF Serving exports its monitoring counters at the monitoring config's path
(`/monitoring/prometheus/metrics`) with names like
`:tensorflow:serving:request_count`; the same names are used here, with
the `_total` suffix prometheus_client gives every counter. Labels add the
version where TF Serving's have none, so a rollout can be watched version
by version.
"""

import prometheus_client

# Latency buckets in microseconds, as TF Serving's request_latency: 33
# buckets from 10 us, each 1.8x the last.
_LATENCY_BUCKETS_US = tuple(10 * 1.8 ** i for i in range(33))
_BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServingMetrics:
  """The server's metrics, in a registry of their own."""

  def __init__(self):
    # TF Serving exports no `_created` series; neither do we.
    prometheus_client.disable_created_metrics()
    self.registry = prometheus_client.CollectorRegistry()
    self._requests = prometheus_client.Counter(
        ':tensorflow:serving:request_count',
        'Requests by model, version, API, entrypoint and status code.',
        ['model_name', 'model_version', 'API', 'entrypoint', 'status'],
        registry=self.registry)
    self._latency = prometheus_client.Histogram(
        ':tensorflow:serving:request_latency',
        'Latency of successful requests in microseconds, from request '
        'received to response ready.',
        ['model_name', 'API', 'entrypoint'],
        buckets=_LATENCY_BUCKETS_US, registry=self.registry)
    self._batch_sizes = prometheus_client.Histogram(
        ':tensorflow:serving:batching_session:processed_batch_size',
        'Sizes of the batches run by server-side batching.',
        ['model_name'], buckets=_BATCH_SIZE_BUCKETS, registry=self.registry)
    self._loads = prometheus_client.Counter(
        ':tensorflow:serving:model_load_count',
        'Version loads by model, version and outcome (ok or error).',
        ['model_name', 'model_version', 'outcome'], registry=self.registry)
    self._load_latency = prometheus_client.Histogram(
        ':tensorflow:serving:model_load_latency',
        'Seconds to load and warm up a version.', ['model_name'],
        buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300), registry=self.registry)
    self._unloads = prometheus_client.Counter(
        ':tensorflow:serving:model_unload_count',
        'Version unloads by model and version.',
        ['model_name', 'model_version'], registry=self.registry)

  def observe_request(self, model_name: str, version: str, api: str,
                      entrypoint: str, status: str, seconds: float) -> None:
    """One request: `api` is the method as TF Serving names it (predict,
    classify for REST; Predict, Classify for gRPC), `entrypoint` REST or
    GRPC, `status` the canonical code name. Latency is kept for successful
    requests only, as TF Serving keeps it."""
    self._requests.labels(model_name, version, api, entrypoint, status).inc()
    if status == 'OK':
      self._latency.labels(model_name, api, entrypoint).observe(seconds * 1e6)

  def observe_batch(self, model_name: str, size: int) -> None:
    self._batch_sizes.labels(model_name).observe(size)

  def observe_load(self, model_name: str, version: int, ok: bool,
                   seconds: float) -> None:
    self._loads.labels(model_name, str(version),
                       'ok' if ok else 'error').inc()
    self._load_latency.labels(model_name).observe(seconds)

  def observe_unload(self, model_name: str, version: int) -> None:
    self._unloads.labels(model_name, str(version)).inc()

  def exposition(self) -> bytes:
    """The metrics in Prometheus' text format."""
    return prometheus_client.generate_latest(self.registry)
