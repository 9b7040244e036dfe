"""Headlines per second through `finsent monitor`, scoring in process vs
through the model server, side by side in one run.

  python -m finsent.benchmarks.monitor_benchmark \\
      --saved_model serving_model/sentiment_transformer \\
      --output docs/results/monitor

The stream is `finsent replay` of the Twitter-FNS set (train and valid),
`--copies` times over, spread over 12 hours per copy so that each copy
keeps the one-copy density (windows hold as many headlines as with one).
Each repeat runs the real command in a fresh process, once per mode,
alternating: `--saved_model` (RunInference on the SavedModel in the job's
process), `--model_url` (RunInference through `finsent serve`, REST,
started once on the same model), and `--watch` (in process, the stream cut
into `--watch_files` files, in time order, each renamed into the watched
directory once the one before is read; SIGINT after the last). A run's
rate is the headlines it scored over the job's own seconds (Beam pipeline
start to finish, model loading included; Python and TensorFlow start-up
before it are not; for a watch, its waits for the next file, up to 0.2 s
each, are in). Each watch's windows and alerts are compared with the
in-process run's of the same repeat.
"""

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

from finsent.benchmarks import host
from finsent.monitoring import replay
from finsent.monitoring.outputs import ALERTS_FILE
from finsent.monitoring.outputs import FILES_READ_FILE
from finsent.monitoring.outputs import WINDOWS_FILE
from finsent.monitoring.scoring import resolve_saved_model
from finsent import configs
from finsent.serving.server.process import ModelServerProcess

TWITTER_FNS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), '..', 'shared', 'data',
    'twitter_financial_news_sentiment')
MODES = ('in_process', 'served', 'watched')
POLL_SECONDS = 0.2


def write_stream(data: str, copies: int, path: str) -> int:
  """The replayed stream of `copies` x the data; returns its length."""
  records, _ = replay.read_data(data)
  config = dataclasses.replace(configs.ReplayConfig(),
                               span_hours=12.0 * copies)
  rows = replay.replay(records * copies, config, config.tickers[0])
  replay.write_jsonl(rows, path)
  return len(rows)


def run_monitor(stream: str, output_dir: str, model_flags: List[str]) -> Dict:
  """One `finsent monitor` in a fresh process; its summary.json."""
  command = [sys.executable, '-m', 'finsent.commands.cli', 'monitor', '--input',
             stream, '--output', output_dir, *model_flags]
  result = subprocess.run(command, capture_output=True, text=True,
                          check=False)
  if result.returncode:
    raise RuntimeError(f'{shlex.join(command)} failed:\n'
                       f'{result.stderr[-3000:]}')
  with open(os.path.join(output_dir, 'summary.json')) as f:
    return json.load(f)


def run_watch(stream: str, files: int, work_dir: str,
              model_flags: List[str]) -> Dict:
  """One `finsent monitor --watch` in a fresh process, fed `stream` cut
  into `files` files one at a time; its summary.json."""
  with open(stream, encoding='utf-8') as f:
    lines = f.readlines()
  feed, output_dir = (os.path.join(work_dir, name) for name in ('feed', 'out'))
  os.makedirs(feed)
  ledger = os.path.join(output_dir, FILES_READ_FILE)
  command = [sys.executable, '-m', 'finsent.commands.cli', 'monitor', '--input', feed,
             '--watch', '--output', output_dir, *model_flags,
             '--file_system_poll_wait_seconds', str(POLL_SECONDS)]
  process = subprocess.Popen(command, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True)
  try:
    for index in range(files):
      part = lines[len(lines) * index // files:
                   len(lines) * (index + 1) // files]
      writing = os.path.join(feed, f'.part{index:03d}.writing')
      with open(writing, 'w', encoding='utf-8') as f:
        f.writelines(part)
      os.replace(writing, os.path.join(feed, f'part{index:03d}.jsonl'))
      while _lines_in(ledger) <= index:
        if process.poll() is not None:
          break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=600)
  finally:
    process.kill()
  if process.returncode:
    raise RuntimeError(f'{shlex.join(command)} failed:\n{stderr[-3000:]}')
  with open(os.path.join(output_dir, 'summary.json')) as f:
    return json.load(f)


def _lines_in(path: str) -> int:
  if not os.path.exists(path):
    return 0
  with open(path, encoding='utf-8') as f:
    return sum(1 for _ in f)


def _same_outputs(dir_a: str, dir_b: str) -> bool:
  """The same compacted windows and alerts, byte for byte."""
  def read(directory, name):
    with open(os.path.join(directory, name), 'rb') as f:
      return f.read()
  return all(read(dir_a, name) == read(dir_b, name)
             for name in (WINDOWS_FILE, ALERTS_FILE))


def main(argv: Optional[List[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = argparse.ArgumentParser(
      prog='python -m finsent.benchmarks.monitor_benchmark',
      description=__doc__.split('\n\n')[0])
  parser.add_argument('--saved_model', required=True, help='a pushed '
                      'model base path, e.g. serving_model/sentiment_transformer')
  parser.add_argument('--data', default=TWITTER_FNS)
  parser.add_argument('--copies', type=int, default=10)
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--watch_files', type=int, default=10,
                      help='files the watched mode cuts the stream into')
  parser.add_argument('--output', required=True, metavar='DIR')
  args = parser.parse_args(argv)
  base_path = os.path.abspath(args.saved_model)
  _, version = resolve_saved_model(base_path)
  os.makedirs(args.output, exist_ok=True)
  started = time.monotonic()

  def progress(message):
    print(f'[{time.monotonic() - started:5.0f} s] {message}', flush=True)

  runs = {mode: [] for mode in MODES}
  with tempfile.TemporaryDirectory() as work:
    stream = os.path.join(work, 'stream.jsonl')
    headlines = write_stream(args.data, args.copies, stream)
    progress(f'stream: {headlines:,} headlines')
    with ModelServerProcess(
        '--model_name=sentiment', f'--model_base_path={base_path}') as server:
      model_flags = {
          'in_process': ['--saved_model', base_path],
          'served': ['--model_url', f'127.0.0.1:{server.rest_port}'],
      }
      for repeat in range(args.repeats):
        for mode in MODES:
          run_dir = os.path.join(work, f'{mode}{repeat}')
          if mode == 'watched':
            summary = run_watch(stream, args.watch_files, run_dir,
                                model_flags['in_process'])
          else:
            summary = run_monitor(stream, run_dir, model_flags[mode])
          runs[mode].append({key: summary[key] for key in (
              'headlines_scored', 'dead_letters', 'windows', 'alerts',
              'seconds', 'headlines_per_second')})
          if mode == 'watched':
            runs[mode][-1]['same_as_in_process'] = _same_outputs(
                summary['output'], os.path.join(work, f'in_process{repeat}'))
          progress(f'{mode} #{repeat + 1}: {summary["headlines_scored"]:,} in '
                   f'{summary["seconds"]:.1f} s '
                   f'({summary["headlines_per_second"]:,.0f}/s)')
  medians = {mode: statistics.median(r['headlines_per_second'] for r in rs)
             for mode, rs in runs.items()}
  results = {
      'date': datetime.datetime.now(datetime.timezone.utc).strftime(
          '%Y-%m-%d %H:%M UTC'),
      'command': 'python -m finsent.benchmarks.monitor_benchmark ' + shlex.join(argv),
      'machine': host.machine(),
      'model': {'base_path': base_path, 'version': version},
      'stream': {'data': os.path.abspath(args.data), 'copies': args.copies,
                 'headlines': headlines},
      'runs': runs,
      'median_headlines_per_second': medians,
      'served_over_in_process': round(
          medians['served'] / medians['in_process'], 3),
      'watched_over_in_process': round(
          medians['watched'] / medians['in_process'], 3),
      'watch_files': args.watch_files,
  }
  with open(os.path.join(args.output, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2)
  with open(os.path.join(args.output, 'results.md'), 'w') as f:
    f.write(format_results(results))
  print(format_results(results))
  return 0


def format_results(results: Dict) -> str:
  machine = results['machine']
  lines = [
      f'# finsent monitor throughput ({results["date"]})', '',
      f'`{results["command"]}`', '',
      f'{machine["cpu_model"]}, {machine["logical_cpus"]} logical CPUs, '
      f'{machine["memory_gib"]} GiB; model {results["model"]["base_path"]} '
      f'v{results["model"]["version"]}; stream '
      f'{results["stream"]["headlines"]:,} headlines '
      f'({results["stream"]["copies"]} x Twitter-FNS replayed).', '',
      '| scoring | median headlines/s | runs (headlines/s) | median job s |',
      '|---|---|---|---|',
  ]
  for mode, runs in results['runs'].items():
    lines.append(
        f'| {mode} | {results["median_headlines_per_second"][mode]:,.0f} | '
        + ', '.join(f'{r["headlines_per_second"]:,.0f}' for r in runs)
        + f' | {statistics.median(r["seconds"] for r in runs):.1f} |')
  watched = results['runs']['watched']
  lines += ['', f'served / in process: {results["served_over_in_process"]}; '
            f'watched / in process: {results["watched_over_in_process"]} '
            f'(the stream in {results["watch_files"]} files); windows and '
            'alerts of each watch the same as the in-process run\'s: '
            + ', '.join('yes' if r['same_as_in_process'] else 'NO'
                        for r in watched), '']
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.exit(main())
