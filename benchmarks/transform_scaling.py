"""Transform's throughput on Beam's DirectRunner by worker processes.

  python -m finsent.benchmarks.transform_scaling \\
      --data ../shared/data/twitter_financial_news_sentiment \\
      --copies 1 10 --workers 1 2 --repeats 3 \\
      --output docs/results/transform

For each `--copies` (the data written that many times over, both splits),
one small TFX pipeline (TextExampleGen, ImportSchemaGen, Transform, built
by pipeline.pipeline's own functions) runs on LocalDagRunner with TFX's
cache on: ExampleGen runs once, then Transform runs `--repeats` times per
worker count, the counts interleaved in each repeat so that they are
measured side by side. Transform gets `--direct_running_mode=
multi_processing --direct_num_workers=N`; the repeat's number goes into
its custom_config (which preprocessing_fn does not read) so that the cache
does not answer it. A run's seconds are Transform's execution in ML
Metadata (analysis, transformation, statistics and writing), its rate the
rows of both splits over them, and its busy cores the machine's CPU
seconds over the same window (/proc/stat, sampled every 0.25 s).
"""

import argparse
import dataclasses
import glob
import json
import os
import statistics
import sys
import tempfile
import time
from typing import Dict, List, Optional

from finsent.benchmarks import host
from finsent.data import loaders
from finsent import configs
from finsent.pipeline import pipeline as pipeline_lib
from finsent.pipeline import summary as summary_lib
from tfx import v1 as tfx

TRANSFORM = 'Transform'
_REPEAT_KEY = 'benchmark_repeat'


def write_copies(data: str, copies: int, folder: str) -> int:
  """Each split file of `data` written `copies` times over into `folder`
  (its header once); returns the records written, read back."""
  layout = loaders.resolve_input(data)
  records = 0
  for pattern in layout.splits.values():
    for path in glob.glob(os.path.join(layout.input_base, pattern)):
      with open(path, encoding='utf-8') as f:
        header, body = f.read().split('\n', 1)
      if not body.endswith('\n'):
        body += '\n'
      copy = os.path.join(folder, os.path.basename(path))
      with open(copy, 'w', encoding='utf-8') as f:
        f.write(header + '\n' + body * copies)
      # Records, not lines: a quoted CSV field may hold line breaks.
      records += sum(1 for _ in loaders.read_records(copy))
  return records


def time_transform(config: configs.PipelineConfig, workers: int,
                   repeat: int, sampler: host.CpuSampler) -> Dict[str, float]:
  """Runs the pipeline; the seconds of its (not cached) Transform and the
  machine's mean busy cores meanwhile."""
  example_gen = pipeline_lib.create_example_gen(config)
  schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_file)
  transform = pipeline_lib.create_transform(
      config, example_gen.outputs['examples'], schema_gen.outputs['schema'])
  custom_config = json.loads(transform.exec_properties['custom_config'])
  transform.exec_properties['custom_config'] = json.dumps(
      {**custom_config, _REPEAT_KEY: repeat})
  transform.with_beam_pipeline_args([
      '--direct_running_mode=multi_processing',
      f'--direct_num_workers={workers}'])
  tfx.orchestration.LocalDagRunner().run(tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=[example_gen, schema_gen, transform],
      enable_cache=True,
      metadata_connection_config=(
          tfx.orchestration.metadata.sqlite_metadata_connection_config(
              config.metadata_path)),
      beam_pipeline_args=['--direct_running_mode=in_memory']))
  store = summary_lib.open_metadata_store(config)
  _, components = summary_lib.latest_run_components(store,
                                                    config.pipeline_name)
  run = next(c for c in components if c.node_id == TRANSFORM)
  if run.state != 'COMPLETE':
    raise RuntimeError(f'Transform was {run.state}, not run: {run}')
  return {'seconds': run.seconds, 'busy_cores': sampler.busy_cores(
      run.started, run.started + run.seconds)}


def main(argv: Optional[List[str]] = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--data', required=True,
                      help='a data folder or file finsent run reads')
  parser.add_argument('--copies', type=int, nargs='+', default=[1, 10])
  parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
  parser.add_argument('--repeats', type=int, default=3)
  parser.add_argument('--output', required=True,
                      help='folder for results.json and results.md')
  args = parser.parse_args(argv)
  os.makedirs(args.output, exist_ok=True)
  results = {'command': ' '.join(['python -m finsent.benchmarks.transform_scaling',
                                  *(argv if argv is not None
                                    else sys.argv[1:])]),
             'date': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
             'machine': host.machine(), 'runs': []}
  sampler = host.CpuSampler()
  sampler.start()
  for copies in args.copies:
    with tempfile.TemporaryDirectory() as work:
      data = os.path.join(work, 'data')
      os.makedirs(data)
      rows = write_copies(args.data, copies, data)
      config = dataclasses.replace(
          configs.PipelineConfig(), data=data,
          output_dir=os.path.join(work, 'out'))
      for repeat in range(args.repeats):
        for workers in args.workers:
          run = time_transform(config, workers, repeat, sampler)
          results['runs'].append({'copies': copies, 'rows': rows,
                                  'workers': workers, 'repeat': repeat,
                                  **run})
          print(f'copies {copies} ({rows:,} rows), {workers} worker(s), '
                f'repeat {repeat + 1}/{args.repeats}: {run["seconds"]:.1f} '
                f's, {rows / run["seconds"]:,.0f} rows/s, '
                f'{run["busy_cores"]:.2f} cores busy', flush=True)
  sampler.stop()
  with open(os.path.join(args.output, 'results.json'), 'w') as f:
    json.dump(results, f, indent=2)
  table = format_results(results)
  with open(os.path.join(args.output, 'results.md'), 'w') as f:
    f.write(table + '\n')
  print(table)
  return 0


def format_results(results: Dict) -> str:
  """Medians per copies and workers: seconds, rows/s, busy cores, and the
  speed-up over the first worker count."""
  machine = results['machine']
  lines = [f'Transform on DirectRunner (multi_processing), '
           f'{results["date"]}: {machine["cpu_model"]}, '
           f'{machine["logical_cpus"]} logical CPUs, '
           f'{machine["memory_gib"]} GiB',
           f'Command: `{results["command"]}`', '',
           '| rows | workers | median s | runs (s) | rows/s | busy cores '
           '| speed-up |',
           '|---|---|---|---|---|---|---|']
  cells = {}
  for run in results['runs']:
    cells.setdefault((run['copies'], run['rows'], run['workers']),
                     []).append(run)
  base = {}
  for (copies, rows, workers), runs in cells.items():
    seconds = [r['seconds'] for r in runs]
    median = statistics.median(seconds)
    busy = statistics.median(r['busy_cores'] for r in runs)
    base.setdefault(copies, median)
    lines.append(f'| {rows:,} | {workers} | {median:.1f} | '
                 f'{", ".join(f"{s:.1f}" for s in seconds)} | '
                 f'{rows / median:,.0f} | {busy:.2f} | '
                 f'{base[copies] / median:.2f}x |')
  return '\n'.join(lines)


if __name__ == '__main__':
  sys.exit(main())
