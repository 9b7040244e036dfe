"""Headlines per second through `finsent monitor`, scoring in process vs
through the model server, side by side in one run.

  python -m benchmarks.monitor_benchmark \\
      --saved_model serving_model/sentiment_transformer \\
      --output benchmarks/results/monitor

The stream is `finsent replay` of the Twitter-FNS set (train and valid),
`--copies` times over, spread over 12 hours per copy so that each copy
keeps the one-copy density (windows hold as many headlines as with one).
Each repeat runs the real command in a fresh process, once per mode,
alternating: `--saved_model` (RunInference on the SavedModel in the job's
process) and `--model_url` (RunInference through `finsent serve`, REST,
started once on the same model). A run's rate is the headlines it scored
over the job's own seconds (Beam pipeline start to finish, model loading
included; Python and TensorFlow start-up before it are not).
"""

import argparse
import dataclasses
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List, Optional

from benchmarks import host
from monitoring import replay
from monitoring.scoring import resolve_saved_model
from pipeline import configs
from serving.process import ModelServerProcess

TWITTER_FNS = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), '..', 'shared', 'data',
    'twitter_financial_news_sentiment')
MODES = ('in_process', 'served')


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
  command = [sys.executable, '-m', 'pipeline.cli', 'monitor', '--input',
             stream, '--output', output_dir, *model_flags]
  result = subprocess.run(command, capture_output=True, text=True,
                          check=False)
  if result.returncode:
    raise RuntimeError(f'{shlex.join(command)} failed:\n'
                       f'{result.stderr[-3000:]}')
  with open(os.path.join(output_dir, 'summary.json')) as f:
    return json.load(f)


def main(argv: Optional[List[str]] = None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  parser = argparse.ArgumentParser(
      prog='python -m benchmarks.monitor_benchmark',
      description=__doc__.split('\n\n')[0])
  parser.add_argument('--saved_model', required=True, help='a pushed '
                      'model base path, e.g. serving_model/sentiment_transformer')
  parser.add_argument('--data', default=TWITTER_FNS)
  parser.add_argument('--copies', type=int, default=10)
  parser.add_argument('--repeats', type=int, default=3)
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
          summary = run_monitor(stream, os.path.join(work, f'{mode}{repeat}'),
                                model_flags[mode])
          runs[mode].append({key: summary[key] for key in (
              'headlines_scored', 'dead_letters', 'windows', 'alerts',
              'seconds', 'headlines_per_second')})
          progress(f'{mode} #{repeat + 1}: {summary["headlines_scored"]:,} in '
                   f'{summary["seconds"]:.1f} s '
                   f'({summary["headlines_per_second"]:,.0f}/s)')
  medians = {mode: statistics.median(r['headlines_per_second'] for r in rs)
             for mode, rs in runs.items()}
  results = {
      'date': datetime.datetime.now(datetime.timezone.utc).strftime(
          '%Y-%m-%d %H:%M UTC'),
      'command': 'python -m benchmarks.monitor_benchmark ' + shlex.join(argv),
      'machine': host.machine(),
      'model': {'base_path': base_path, 'version': version},
      'stream': {'data': os.path.abspath(args.data), 'copies': args.copies,
                 'headlines': headlines},
      'runs': runs,
      'median_headlines_per_second': medians,
      'served_over_in_process': round(
          medians['served'] / medians['in_process'], 3),
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
  lines += ['', f'served / in process: {results["served_over_in_process"]}',
            '']
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.exit(main())
