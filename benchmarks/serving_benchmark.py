"""Serving benchmark: `finsent serve` against the in-process call it wraps.

What it measures, for the newest version of each pushed model
(`sentiment_rnn`, `sentiment_transformer` under --serving_model_dir):

1. the limit: batch-1 p50/p99 of the SavedModel called in this process,
   through `LoadedVersion.run` (the TF1 session the server runs) and, for
   reference, `tf.saved_model.load(...).signatures['serving_default']`;
2. batch-1 p50/p99 through a server without batching, over REST and gRPC,
   from one client sending sequential keep-alive requests, and the overhead
   over (1) measured in the same repeat;
3. throughput with server-side batching on, under load from several client
   processes, with requests of 1 and of 16 headlines.

Why: the serving issue's goals, a p50 overhead of at most 1 ms over the
in-process call and at least 3,000 headlines/s with batching on 2 cores.
Client and server share the machine's cores, as they must on a 2-core
machine: the throughput is what one machine does with both sides on it.

How to run (from the project root, after a pipeline run has pushed models):

  python -m finsent.benchmarks.serving_benchmark --serving_model_dir serving_model \
      --output docs/results                  # about 9 minutes on 2 cores
  python -m finsent.benchmarks.serving_benchmark --serving_model_dir serving_model \
      --output /tmp/bench --quick            # smoke test, under 2 minutes

It writes serving_results.json (every repeat, raw, and min/median/max),
serving_results.md (tables of the medians) and serving_results.png.

TensorFlow is imported inside the functions that need it, not at the top:
the load-generating client processes are started with `spawn`, which
re-imports this module in each of them, and they must not spend the cores
being measured on importing TensorFlow.
"""

import argparse
import csv
import datetime
import json
import multiprocessing
import os
import shlex
import statistics
import sys
import tempfile
import threading
import time
import traceback
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import grpc
import numpy as np
from prometheus_client.parser import text_string_to_metric_families
from PIL import Image
from PIL import ImageDraw
from PIL import ImageFont
import requests

from finsent.benchmarks import host
from finsent.serving.server.process import ModelServerProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADLINES_CSV = os.path.join(ROOT, 'data', 'sample', 'financial_headlines.csv')
MODELS = ('sentiment_rnn', 'sentiment_transformer')
SIGNATURE = 'serving_default'
IN_PROCESS = 'in-process'
IN_PROCESS_TF2 = 'in-process (tf.saved_model.load)'
PROTOCOLS = ('REST', 'gRPC')
REQUEST_SHAPES = (1, 16)
# The API and entrypoint labels the server's request_latency metric gives
# each protocol's Predict.
_METRIC_LABELS = {'REST': ('predict', 'REST'), 'gRPC': ('Predict', 'GRPC')}
PREDICT_METHOD = '/tensorflow.serving.PredictionService/Predict'
JSON_HEADERS = {'Content-Type': 'application/json'}
BATCHING_CONFIG = ('max_batch_size { value: 64 }\n'
                   'batch_timeout_micros { value: 2000 }\n'
                   'num_batch_threads { value: 2 }\n'
                   'max_enqueued_batches { value: 1000 }\n')
METRICS_PATH = '/monitoring/prometheus/metrics'
MONITORING_CONFIG = ('prometheus_config { enable: true path: '
                     f'"{METRICS_PATH}" }}\n')
BATCH_SIZE_METRIC = ':tensorflow:serving:batching_session:processed_batch_size'
LATENCY_METRIC = ':tensorflow:serving:request_latency'
GOAL_OVERHEAD_MS = 1.0
GOAL_HEADLINES_PER_S = 3000
# A full run (about 9 minutes) and --quick; a flag given explicitly wins.
FULL = {'requests': 1000, 'repeats': 3, 'warmup_calls': 50,
        'duration_seconds': 10.0, 'warmup_seconds': 2.0, 'processes': 4,
        'threads_per_process': 8}
QUICK = {'requests': 100, 'repeats': 1, 'warmup_calls': 10,
         'duration_seconds': 2.0, 'warmup_seconds': 0.5, 'processes': 2,
         'threads_per_process': 4}
_LOAD_START_TIMEOUT_SECONDS = 120
# Past this much CPU used by other processes, the numbers are not this
# server's.
_OTHER_CPU_WARNING_CORES = 0.2


def load_headlines(path: str = HEADLINES_CSV) -> List[str]:
  """The bundled sample's 1,200 headlines (26 to 107 characters), sent in
  file order, round robin."""
  with open(path, newline='', encoding='utf-8') as f:
    return [row['text'] for row in csv.DictReader(f)]


def newest_version(base_path: str) -> int:
  versions = [int(entry) for entry in os.listdir(base_path)
              if entry.isdigit() and
              os.path.isdir(os.path.join(base_path, entry))]
  if not versions:
    raise FileNotFoundError(f'no version directory under {base_path}')
  return max(versions)


def _percentiles(seconds: Sequence[float]) -> Dict[str, float]:
  values = np.asarray(seconds) * 1e3
  return {'p50_ms': float(np.percentile(values, 50)),
          'p99_ms': float(np.percentile(values, 99)),
          'mean_ms': float(values.mean())}


def _summarize(repeats: List[Dict[str, object]]
               ) -> Dict[str, Dict[str, float]]:
  """min/median/max over the repeats of every number they report."""
  return {key: {'min': min(r[key] for r in repeats),
                'median': statistics.median(r[key] for r in repeats),
                'max': max(r[key] for r in repeats)}
          for key, value in repeats[0].items()
          if isinstance(value, (int, float))}


def _cpu_seconds(pid: int) -> float:
  """User + system CPU time of a process, all its threads together."""
  with open(f'/proc/{pid}/stat', encoding='utf-8') as f:
    # After the parenthesised command name: state is field 3, utime 14 and
    # stime 15 of proc(5).
    fields = f.read().rsplit(')', 1)[1].split()
  return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def _scrape(server: ModelServerProcess) -> Dict[Tuple, float]:
  """The server's Prometheus samples, keyed by (name, sorted labels)."""
  text = requests.get(server.url(METRICS_PATH), timeout=10).text
  return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
          for family in text_string_to_metric_families(text)
          for sample in family.samples}


def _delta(after: Dict[Tuple, float], before: Dict[Tuple, float], name: str,
           **labels: str) -> float:
  key = (name, tuple(sorted(labels.items())))
  return after.get(key, 0.0) - before.get(key, 0.0)


def _batch_sizes(after: Dict[Tuple, float], before: Dict[Tuple, float],
                 model_name: str) -> Dict[str, object]:
  """The batches the server ran between two scrapes: how many, their mean
  size, and how many of each size range (the histogram's buckets)."""
  bucket = BATCH_SIZE_METRIC + '_bucket'
  cumulative = sorted(
      (float(dict(labels)['le']), _delta(after, before, bucket,
                                         **dict(labels)))
      for name, labels in after
      if name == bucket and dict(labels).get('model_name') == model_name)
  histogram, counted, lower = {}, 0.0, 1
  for bound, count in cumulative:
    if count > counted:
      upper = 'inf' if bound == float('inf') else int(bound)
      histogram[str(upper) if upper == lower else f'{lower}-{upper}'] = int(
          count - counted)
    counted = count
    if bound != float('inf'):
      lower = int(bound) + 1
  batches = _delta(after, before, BATCH_SIZE_METRIC + '_count',
                   model_name=model_name)
  total = _delta(after, before, BATCH_SIZE_METRIC + '_sum',
                 model_name=model_name)
  return {'batches': int(batches),
          'mean_batch_size': total / batches if batches else 0.0,
          'batch_size_histogram': histogram}


def _predict_request(model_name: str, texts: Sequence[str]):
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tensorflow_serving.apis import predict_pb2
  # pylint: enable=g-import-not-at-top
  request = predict_pb2.PredictRequest()
  request.model_spec.name = model_name
  request.model_spec.signature_name = SIGNATURE
  request.inputs['text'].CopyFrom(
      tf.make_tensor_proto(list(texts), dtype=tf.string, shape=[len(texts)]))
  return request


def _time_sequential(call: Callable[[int], object], settings: Dict,
                     server: Optional[ModelServerProcess] = None,
                     model_name: str = '', protocol: str = ''
                     ) -> Dict[str, float]:
  """Latency of `settings['requests']` calls in a row, after the warm-up
  calls; with a server, also its own view of the same requests."""
  warmup = settings['warmup_calls']
  for i in range(warmup):
    call(i)
  if server is not None:
    metrics_before = _scrape(server)
    server_cpu = _cpu_seconds(server.process.pid)
  machine_cpu, cpu = host.machine_cpu_seconds(), time.process_time()
  wall = time.perf_counter()
  seconds = []
  for i in range(warmup, warmup + settings['requests']):
    started = time.perf_counter()
    call(i)
    seconds.append(time.perf_counter() - started)
  wall = time.perf_counter() - wall
  cpu = time.process_time() - cpu
  other_cpu = host.machine_cpu_seconds() - machine_cpu - cpu
  count = len(seconds)
  result = _percentiles(seconds)
  result['client_cpu_ms_per_request'] = cpu * 1e3 / count
  if server is not None:
    server_cpu = _cpu_seconds(server.process.pid) - server_cpu
    other_cpu -= server_cpu
    metrics = _scrape(server)
    api, entrypoint = _METRIC_LABELS[protocol]
    labels = {'model_name': model_name, 'API': api, 'entrypoint': entrypoint}
    served = _delta(metrics, metrics_before, LATENCY_METRIC + '_count',
                    **labels)
    result['server_side_mean_ms'] = _delta(
        metrics, metrics_before, LATENCY_METRIC + '_sum', **labels) / (
            1e3 * served)
    result['server_cpu_ms_per_request'] = server_cpu * 1e3 / count
  # What else ran meanwhile: a measurement that shared the cores with other
  # work is worthless, and this says so.
  result['other_cpu_cores'] = max(0.0, other_cpu / wall)
  return result


def measure_latency(name: str, base_path: str, version: int, settings: Dict,
                    headlines: List[str], monitoring_file: str,
                    progress: Callable[[str], None]) -> List[Dict]:
  """Batch-1 latency in-process, and through a server without batching."""
  # pylint: disable=g-import-not-at-top
  import tensorflow as tf
  from tensorflow_serving.apis import prediction_service_pb2_grpc
  from finsent.serving.server.model_manager import LoadedVersion
  # pylint: enable=g-import-not-at-top
  path = os.path.join(base_path, str(version))
  progress(f'[latency] {name}: loading version {version} in-process')
  loaded = LoadedVersion(name, version, path)
  signature = tf.saved_model.load(path).signatures[SIGNATURE]
  count = len(headlines)
  # Inputs are built before the clock starts, for every path alike.
  feeds = [{'text': np.array([h], dtype=object)} for h in headlines]
  constants = [tf.constant([h]) for h in headlines]
  bodies = [json.dumps({'instances': [h]}) for h in headlines]
  predict_requests = [_predict_request(name, [h]) for h in headlines]
  progress(f'[latency] {name}: starting a server without batching')
  # The monitoring flag only exposes metrics the server records anyway.
  # The channel is closed before the server stops: an open one would hold
  # the server's shutdown for its whole grace period.
  with ModelServerProcess(f'--model_name={name}',
                          f'--model_base_path={base_path}',
                          f'--monitoring_config_file={monitoring_file}',
                          ready_model=name) as server, \
      grpc.insecure_channel(server.grpc_target) as channel, \
      requests.Session() as session:
    url = server.url(f'/v1/models/{name}:predict')
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

    def rest(i):
      response = session.post(url, data=bodies[i % count],
                              headers=JSON_HEADERS, timeout=30)
      response.raise_for_status()
      return response.json()

    paths = {
        IN_PROCESS: lambda i: loaded.run(SIGNATURE, feeds[i % count]),
        IN_PROCESS_TF2: lambda i: signature(text=constants[i % count]),
        'REST': rest,
        'gRPC': lambda i: stub.Predict(predict_requests[i % count],
                                       timeout=30),
    }
    repeats = {path_name: [] for path_name in paths}
    for repeat in range(settings['repeats']):
      for path_name, call in paths.items():
        progress(f'[latency] {name}: {path_name}, repeat '
                 f'{repeat + 1}/{settings["repeats"]}')
        if path_name in PROTOCOLS:
          result = _time_sequential(call, settings, server, name, path_name)
          result['overhead_p50_ms'] = (
              result['p50_ms'] - repeats[IN_PROCESS][repeat]['p50_ms'])
        else:
          result = _time_sequential(call, settings)
        repeats[path_name].append(result)
  loaded.close()
  return [{'model': name, 'version': version, 'path': path_name,
           'repeats': runs, 'summary': _summarize(runs)}
          for path_name, runs in repeats.items()]


def _sender(protocol: str, target: str) -> Callable[[bytes], bool]:
  """Sends one prebuilt body; True when the server answered OK. Load
  clients do not decode answers, so that the least of the shared cores goes
  to the client side."""
  if protocol == 'REST':
    session = requests.Session()

    def send(body):
      return session.post(target, data=body, headers=JSON_HEADERS,
                          timeout=60).status_code == 200
    return send
  # The stock stub's method, with serialized requests and answers left as
  # bytes: no TensorFlow protos to import in the client processes.
  predict = grpc.insecure_channel(target).unary_unary(PREDICT_METHOD)

  def send(body):
    try:
      predict(body, timeout=60)
      return True
    except grpc.RpcError:
      return False
  return send


def _load_process(index: int, protocol: str, target: str,
                  bodies: List[bytes], settings: Dict, barrier,
                  results) -> None:
  """One client process: threads sending requests back to back, counting
  those that complete in the measured window."""
  try:
    threads = settings['threads_per_process']
    senders = [_sender(protocol, target) for _ in range(threads)]
    for send in senders:
      send(bodies[0])  # connects before the clock starts
    barrier.wait(_LOAD_START_TIMEOUT_SECONDS)
    window_start = time.monotonic() + settings['warmup_seconds']
    window_end = window_start + settings['duration_seconds']
    latencies = [[] for _ in range(threads)]
    errors = [0] * threads

    def run(k):
      i = (index * threads + k) * 7  # threads start at different headlines
      while True:
        started = time.monotonic()
        if started >= window_end:
          return
        ok = senders[k](bodies[i % len(bodies)])
        i += 1
        finished = time.monotonic()
        if window_start <= finished < window_end:
          if ok:
            latencies[k].append(finished - started)
          else:
            errors[k] += 1

    workers = [threading.Thread(target=run, args=(k,)) for k in range(threads)]
    for worker in workers:
      worker.start()
    time.sleep(max(0.0, window_start - time.monotonic()))
    cpu = time.process_time()
    time.sleep(max(0.0, window_end - time.monotonic()))
    cpu = time.process_time() - cpu
    for worker in workers:
      worker.join()
    results.put({'latencies': [s for ls in latencies for s in ls],
                 'errors': sum(errors), 'cpu_seconds': cpu})
  except Exception:  # pylint: disable=broad-except
    # Reported to the parent, which would otherwise wait for a result.
    results.put({'error': traceback.format_exc()})


def _run_load(server: ModelServerProcess, model_name: str, protocol: str,
              target: str, bodies: List[bytes], size: int,
              settings: Dict) -> Dict[str, object]:
  """Load from `processes` client processes for the measured window."""
  # Python threads alone would be held back by the client's GIL; spawn,
  # because forking a process that runs TensorFlow is unsafe.
  context = multiprocessing.get_context('spawn')
  barrier = context.Barrier(settings['processes'] + 1)
  results = context.Queue()
  processes = [context.Process(target=_load_process, daemon=True,
                               args=(k, protocol, target, bodies, settings,
                                     barrier, results))
               for k in range(settings['processes'])]
  for process in processes:
    process.start()
  try:
    barrier.wait(_LOAD_START_TIMEOUT_SECONDS)
    # The same window as the clients', from the same barrier.
    time.sleep(settings['warmup_seconds'])
    metrics_before = _scrape(server)
    server_cpu = _cpu_seconds(server.process.pid)
    machine_cpu = host.machine_cpu_seconds()
    time.sleep(settings['duration_seconds'])
    machine_cpu = host.machine_cpu_seconds() - machine_cpu
    server_cpu = _cpu_seconds(server.process.pid) - server_cpu
    metrics = _scrape(server)
    reports = [results.get(timeout=_LOAD_START_TIMEOUT_SECONDS)
               for _ in processes]
  finally:
    for process in processes:
      process.join(timeout=60)
      if process.is_alive():
        process.kill()
  failed = [r['error'] for r in reports if 'error' in r]
  if failed:
    raise RuntimeError(f'a load client failed:\n{failed[0]}')
  latencies = [s for r in reports for s in r['latencies']]
  if not latencies:
    raise RuntimeError(f'{model_name} {protocol}: no request completed in '
                       f'the measured window')
  duration = settings['duration_seconds']
  result = {'requests_per_s': len(latencies) / duration,
            'headlines_per_s': len(latencies) * size / duration,
            'errors': sum(r['errors'] for r in reports)}
  result.update(_percentiles(latencies))
  result['server_cpu_cores'] = server_cpu / duration
  result['client_cpu_cores'] = sum(r['cpu_seconds'] for r in reports) / duration
  result['other_cpu_cores'] = max(0.0, machine_cpu / duration -
                                  result['server_cpu_cores'] -
                                  result['client_cpu_cores'])
  result.update(_batch_sizes(metrics, metrics_before, model_name))
  return result


def measure_throughput(name: str, base_path: str, settings: Dict,
                       headlines: List[str], batching_file: str,
                       monitoring_file: str,
                       progress: Callable[[str], None]) -> List[Dict]:
  """Headlines/s through a batching server, per protocol and shape."""
  payloads = {}
  for protocol in PROTOCOLS:
    for size in REQUEST_SHAPES:
      groups = [headlines[i:i + size]
                for i in range(0, len(headlines) - size + 1, size)]
      payloads[protocol, size] = (
          [json.dumps({'instances': g}).encode('utf-8') for g in groups]
          if protocol == 'REST' else
          [_predict_request(name, g).SerializeToString() for g in groups])
  repeats = {key: [] for key in payloads}
  progress(f'[throughput] {name}: starting a server with batching')
  with ModelServerProcess(f'--model_name={name}',
                          f'--model_base_path={base_path}',
                          '--enable_batching',
                          f'--batching_parameters_file={batching_file}',
                          f'--monitoring_config_file={monitoring_file}',
                          ready_model=name) as server:
    targets = {'REST': server.url(f'/v1/models/{name}:predict'),
               'gRPC': server.grpc_target}
    for repeat in range(settings['repeats']):
      for (protocol, size), bodies in payloads.items():
        result = _run_load(server, name, protocol, targets[protocol], bodies,
                           size, settings)
        progress(f'[throughput] {name}: {protocol}, {size} headline(s) per '
                 f'request, repeat {repeat + 1}/{settings["repeats"]}: '
                 f'{result["headlines_per_s"]:,.0f} headlines/s, mean batch '
                 f'{result["mean_batch_size"]:.1f}, {result["errors"]} errors')
        repeats[protocol, size].append(result)
  return [{'model': name, 'protocol': protocol, 'headlines_per_request': size,
           'repeats': runs, 'summary': _summarize(runs)}
          for (protocol, size), runs in repeats.items()]


def goals(latency: List[Dict], throughput: List[Dict]) -> Dict[str, object]:
  overhead = {f'{row["model"]} {row["path"]}':
              row['summary']['overhead_p50_ms']['median']
              for row in latency if row['path'] in PROTOCOLS}
  best = {}
  for row in throughput:
    value = row['summary']['headlines_per_s']['median']
    if value > best.get(row['model'], {}).get('headlines_per_s', -1):
      best[row['model']] = {
          'headlines_per_s': value, 'protocol': row['protocol'],
          'headlines_per_request': row['headlines_per_request']}
  return {'overhead_p50_ms_at_most': GOAL_OVERHEAD_MS,
          'overhead_p50_ms': overhead,
          'overhead_met': {k: v <= GOAL_OVERHEAD_MS
                           for k, v in overhead.items()},
          'headlines_per_s_at_least': GOAL_HEADLINES_PER_S,
          'best_throughput': best,
          'throughput_met': {k: v['headlines_per_s'] >= GOAL_HEADLINES_PER_S
                             for k, v in best.items()}}


def _number(value: Optional[float], digits: int = 2) -> str:
  return '–' if value is None else f'{value:,.{digits}f}'


def markdown(results: Dict) -> str:
  settings = results['settings']
  m = results['machine']
  headlines = results['headlines']
  lines = [
      '# Serving benchmark: `finsent serve` against the in-process call', '',
      f'Measured {results["date"]} on {m["cpu_model"]}, {m["logical_cpus"]} '
      'cores, '
      f'{m["memory_gib"]} GiB RAM; Python {m["python"]}, '
      f'TensorFlow {results["tensorflow_version"]}; '
      f'{results["wall_seconds"]:.0f} s in all. Headlines: the '
      f'{headlines["count"]:,} of `{headlines["source"]}`, round robin.', '',
      f'```sh\n{results["command"]}\n```', '',
      f'**{results["note"]}** Every number is the median of '
      f'{settings["repeats"]} repeat(s); min and max of each are in '
      'serving_results.json. Other processes used at most '
      f'{results["other_cpu_cores_max"]:.2f} of the cores during any '
      'measurement (machine CPU from /proc/stat less the benchmark\'s '
      'own).', '',
      '## Batch-1 latency', '',
      f'One client, {settings["requests"]} sequential batch-1 requests after '
      f'{settings["warmup_calls"]} warm-up calls, keep-alive (REST: a '
      '`requests.Session`; gRPC: the stock `PredictionServiceStub` on one '
      'channel); the server runs without batching. Overhead: p50 minus the '
      'in-process (`LoadedVersion`) p50 of the same repeat. Server-side: the '
      "server's own request_latency metric (request received to response "
      'ready); CPU: per request, of the server process and of the client '
      '(or, in-process, of the call).', '',
      '| model | path | p50 ms | p99 ms | overhead p50 ms | server-side '
      'mean ms | server CPU ms/req | client CPU ms/req |',
      '|---|---|---:|---:|---:|---:|---:|---:|']
  for row in results['latency']:
    s = {k: v['median'] for k, v in row['summary'].items()}
    lines.append(
        f'| {row["model"]} v{row["version"]} | {row["path"]} | '
        f'{_number(s["p50_ms"])} | {_number(s["p99_ms"])} | '
        f'{_number(s.get("overhead_p50_ms"))} | '
        f'{_number(s.get("server_side_mean_ms"))} | '
        f'{_number(s.get("server_cpu_ms_per_request"))} | '
        f'{_number(s["client_cpu_ms_per_request"])} |')
  lines += [
      '', '## Throughput with batching on', '',
      f'{settings["processes"]} client processes × '
      f'{settings["threads_per_process"]} threads sending prebuilt requests '
      f'back to back for {settings["duration_seconds"]:g} s after '
      f'{settings["warmup_seconds"]:g} s of warm-up; the server batches with '
      '`max_batch_size 64, batch_timeout_micros 2000, num_batch_threads 2, '
      'max_enqueued_batches 1000`. Latency is under that load; CPU is in '
      f'cores ({m["logical_cpus"]} = the whole machine).', '',
      '| model | protocol | headlines/request | headlines/s | requests/s | '
      'p50 ms | p99 ms | mean batch | server CPU | client CPU | errors |',
      '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|']
  for row in results['throughput']:
    s = {k: v['median'] for k, v in row['summary'].items()}
    lines.append(
        f'| {row["model"]} | {row["protocol"]} | '
        f'{row["headlines_per_request"]} | {_number(s["headlines_per_s"], 0)} '
        f'| {_number(s["requests_per_s"], 0)} | {_number(s["p50_ms"])} | '
        f'{_number(s["p99_ms"])} | {_number(s["mean_batch_size"], 1)} | '
        f'{_number(s["server_cpu_cores"])} | {_number(s["client_cpu_cores"])} '
        f'| {s["errors"]:g} |')
  lines += ['', 'Batch sizes the server ran (all repeats; share of batches):',
            '']
  for row in results['throughput']:
    histogram = {}
    for run in row['repeats']:
      for bucket, n in run['batch_size_histogram'].items():
        histogram[bucket] = histogram.get(bucket, 0) + n
    total = sum(histogram.values()) or 1
    shares = ', '.join(f'{bucket}: {100 * n / total:.0f}%'
                       for bucket, n in histogram.items())
    lines.append(f'- {row["model"]} {row["protocol"]} × '
                 f'{row["headlines_per_request"]}: {shares}')
  g = results['goals']
  lines += ['', '## Goals', '',
            f'- p50 overhead ≤ {GOAL_OVERHEAD_MS:g} ms over in-process: ' +
            '; '.join(f'{k} {v:.2f} ms '
                      f'({"met" if g["overhead_met"][k] else "not met"})'
                      for k, v in g['overhead_p50_ms'].items()),
            f'- ≥ {GOAL_HEADLINES_PER_S:,} headlines/s with batching on: ' +
            '; '.join(f'{k} {v["headlines_per_s"]:,.0f} ({v["protocol"]}, '
                      f'{v["headlines_per_request"]}/request; '
                      f'{"met" if g["throughput_met"][k] else "not met"})'
                      for k, v in g['best_throughput'].items()), '']
  return '\n'.join(lines)


_COLOURS = {IN_PROCESS: (120, 120, 120), IN_PROCESS_TF2: (185, 185, 185),
            'REST': (52, 101, 164), 'gRPC': (230, 126, 34)}


def _dashed(draw: ImageDraw.ImageDraw, x0: float, x1: float, y: float,
            colour: Tuple[int, int, int]) -> None:
  for x in range(int(x0), int(x1), 12):
    draw.line([(x, y), (min(x + 7, x1), y)], fill=colour, width=2)


def _panel(draw: ImageDraw.ImageDraw, box: Tuple[int, int, int, int],
           title: str, groups: List[Tuple[str, List[Tuple[str, float, str]]]],
           lines: List[Tuple[float, str, Tuple[int, int, int], Optional[int]]],
           font, small) -> None:
  """Grouped bars in `box`; `groups` are (label, [(bar label, value,
  colour key)]), `lines` are (value, label, colour, group index or None for
  the whole panel)."""
  left, top, right, bottom = box
  draw.text((left, top), title, fill='black', font=font)
  top += 40
  peak = max([v for _, bars in groups for _, v, _ in bars] +
             [v for v, _, _, _ in lines]) * 1.15
  step = 10 ** np.floor(np.log10(peak / 5))
  step *= next(f for f in (1, 2, 5, 10) if peak / (step * f) <= 6)

  def y_of(value):
    return bottom - (bottom - top) * value / peak

  for k in range(int(peak / step) + 1):
    y = y_of(k * step)
    draw.line([(left + 60, y), (right, y)], fill=(225, 225, 225))
    draw.text((left, y - 8), f'{k * step:,.6g}', fill='black', font=small)
  slot = (right - left - 60) / len(groups)
  for g, (group_label, bars) in enumerate(groups):
    x0 = left + 60 + g * slot
    width = slot * 0.8 / len(bars)
    for b, (label, value, colour) in enumerate(bars):
      x = x0 + slot * 0.1 + b * width
      draw.rectangle([x + 2, y_of(value), x + width - 2, bottom],
                     fill=_COLOURS[colour])
      draw.text((x + 2, y_of(value) - 16),
                f'{value:,.0f}' if value >= 100 else f'{value:.3g}',
                fill='black', font=small)
      draw.text((x + 2, bottom + 4), label, fill='black', font=small)
    draw.text((x0 + slot * 0.1, bottom + 24), group_label, fill='black',
              font=font)
  for value, label, colour, group in lines:
    x0 = left + 60 if group is None else left + 60 + group * slot
    x1 = right if group is None else x0 + slot
    _dashed(draw, x0, x1, y_of(value), colour)
    if label:
      draw.text((x1 - 150, y_of(value) - 18), label, fill=colour, font=small)


def write_chart(path: str, results: Dict) -> None:
  """p50 batch-1 latency per model and path (in-process dashed), and
  headlines/s per model, protocol and request shape (goal dashed)."""
  image = Image.new('RGB', (1600, 640), 'white')
  draw = ImageDraw.Draw(image)
  font, small = ImageFont.load_default(18), ImageFont.load_default(13)
  short = {IN_PROCESS: 'in-proc', IN_PROCESS_TF2: 'tf.load', 'REST': 'REST',
           'gRPC': 'gRPC'}
  latency_groups, in_process_lines = [], []
  for g, name in enumerate(results['models']):
    rows = [r for r in results['latency'] if r['model'] == name]
    bars = [(short[r['path']], r['summary']['p50_ms']['median'], r['path'])
            for r in rows]
    latency_groups.append((name, bars))
    in_process_lines.append((bars[0][1], '', (90, 90, 90), g))
  _panel(draw, (20, 20, 770, 560),
         'Batch-1 p50 latency (ms, medians; dashed: in-process)',
         latency_groups, in_process_lines, font, small)
  throughput_groups = []
  for name in results['models']:
    throughput_groups.append((name, [
        (f'{r["protocol"]} x{r["headlines_per_request"]}',
         r['summary']['headlines_per_s']['median'], r['protocol'])
        for r in results['throughput'] if r['model'] == name]))
  _panel(draw, (830, 20, 1580, 560),
         'Headlines/s with batching on (medians; client and server on the '
         f'same {results["machine"]["logical_cpus"]} cores)', throughput_groups,
         [(GOAL_HEADLINES_PER_S, f'goal {GOAL_HEADLINES_PER_S:,}/s',
           (200, 30, 30), None)], font, small)
  image.save(path)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m finsent.benchmarks.serving_benchmark',
      description='Latency and throughput of finsent serve (REST, gRPC) '
      'against the in-process call of the same SavedModel.')
  parser.add_argument('--serving_model_dir', required=True,
                      help='holds sentiment_rnn/<version>/ and '
                      'sentiment_transformer/<version>/ (the newest is used)')
  parser.add_argument('--output', required=True,
                      help='folder for serving_results.{json,md,png}')
  parser.add_argument('--models', nargs='+', choices=MODELS,
                      default=list(MODELS), help='which served models '
                      '(default: both)')
  parser.add_argument('--quick', action='store_true',
                      help='small numbers, for a smoke test')
  for key, value in FULL.items():
    parser.add_argument(f'--{key}', type=type(value),
                        help=f'default {value} ({QUICK[key]} with --quick)')
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  argv = sys.argv[1:] if argv is None else list(argv)
  args = build_parser().parse_args(argv)
  defaults = QUICK if args.quick else FULL
  settings = {key: defaults[key] if getattr(args, key) is None
              else getattr(args, key) for key in FULL}
  started = time.monotonic()

  def progress(message):
    print(f'[{time.monotonic() - started:5.0f} s] {message}', flush=True)

  models = {}
  for name in args.models:
    base_path = os.path.abspath(os.path.join(args.serving_model_dir, name))
    models[name] = {'base_path': base_path,
                    'version': newest_version(base_path)}
  headlines = load_headlines()
  latency, throughput = [], []
  with tempfile.TemporaryDirectory() as config_dir:
    batching_file = os.path.join(config_dir, 'batching.config')
    monitoring_file = os.path.join(config_dir, 'monitoring.config')
    with open(batching_file, 'w', encoding='utf-8') as f:
      f.write(BATCHING_CONFIG)
    with open(monitoring_file, 'w', encoding='utf-8') as f:
      f.write(MONITORING_CONFIG)
    for name, model in models.items():
      latency += measure_latency(name, model['base_path'], model['version'],
                                 settings, headlines, monitoring_file,
                                 progress)
      throughput += measure_throughput(name, model['base_path'], settings,
                                       headlines, batching_file,
                                       monitoring_file, progress)
  results = {
      'date': datetime.datetime.now(datetime.timezone.utc).strftime(
          '%Y-%m-%d %H:%M UTC'),
      'command': 'python -m finsent.benchmarks.serving_benchmark ' + shlex.join(argv),
      'machine': host.machine(),
      'tensorflow_version': tf.__version__,
      'note': f'Client and server share the same {os.cpu_count()} cores.',
      'settings': settings,
      'batching_parameters': BATCHING_CONFIG,
      'headlines': {'source': os.path.relpath(HEADLINES_CSV, ROOT),
                    'count': len(headlines)},
      'models': models,
      'latency': latency,
      'throughput': throughput,
      'goals': goals(latency, throughput),
      'other_cpu_cores_max': max(run['other_cpu_cores']
                                 for row in latency + throughput
                                 for run in row['repeats']),
      'wall_seconds': time.monotonic() - started,
  }
  os.makedirs(args.output, exist_ok=True)
  with open(os.path.join(args.output, 'serving_results.json'), 'w',
            encoding='utf-8') as f:
    json.dump(results, f, indent=2)
  report = markdown(results)
  with open(os.path.join(args.output, 'serving_results.md'), 'w',
            encoding='utf-8') as f:
    f.write(report)
  write_chart(os.path.join(args.output, 'serving_results.png'), results)
  print(report[report.index('## Batch-1 latency'):])
  print(f'Wrote serving_results.json, .md and .png to {args.output}')
  if results['other_cpu_cores_max'] > _OTHER_CPU_WARNING_CORES:
    print(f'WARNING: other processes used up to '
          f'{results["other_cpu_cores_max"]:.2f} cores during the '
          'measurements: rerun on a quiet machine.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
