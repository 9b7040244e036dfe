"""The serving benchmark runs end to end and reports every measurement.

Timings are not asserted (they depend on the machine and what else runs);
only that each cell docs/results/serving.md quotes was measured and is a
positive number.
"""

import json
import math
import os
import shutil

from finsent.benchmarks import serving_benchmark


def test_quick_run_reports_every_cell(exported_model, tmp_path):
  export_dir, _, _ = exported_model
  # One model keeps the test short; the script treats each the same way.
  models = serving_benchmark.MODELS[-1:]
  for name in models:
    shutil.copytree(export_dir, tmp_path / 'serving_model' / name / '1')
  output = tmp_path / 'results'

  assert serving_benchmark.main([
      '--serving_model_dir', str(tmp_path / 'serving_model'),
      '--output', str(output), '--models', *models, '--quick',
      '--requests', '20',
      '--warmup_calls', '5', '--duration_seconds', '0.5',
      '--warmup_seconds', '0.2', '--processes', '1',
      '--threads_per_process', '4']) == 0

  results = json.loads((output / 'serving_results.json').read_text())
  paths = (serving_benchmark.IN_PROCESS, serving_benchmark.IN_PROCESS_TF2,
           *serving_benchmark.PROTOCOLS)
  assert {(r['model'], r['path']) for r in results['latency']} == {
      (m, p) for m in models for p in paths}
  for row in results['latency']:
    summary = row['summary']
    for key in ('p50_ms', 'p99_ms'):
      assert summary[key]['median'] > 0, (row['model'], row['path'], key)
    if row['path'] in serving_benchmark.PROTOCOLS:
      # Can be negative in principle (the server is not slower by law).
      assert math.isfinite(summary['overhead_p50_ms']['median'])
      assert summary['server_side_mean_ms']['median'] > 0
  assert {(r['model'], r['protocol'], r['headlines_per_request'])
          for r in results['throughput']} == {
              (m, p, s) for m in models
              for p in serving_benchmark.PROTOCOLS
              for s in serving_benchmark.REQUEST_SHAPES}
  for row in results['throughput']:
    summary = row['summary']
    for key in ('headlines_per_s', 'requests_per_s', 'p50_ms',
                'mean_batch_size'):
      assert summary[key]['median'] > 0, (row['model'], row['protocol'], key)
    assert summary['errors']['max'] == 0
  markdown = (output / 'serving_results.md').read_text()
  assert markdown.count('| sentiment_') == len(results['latency']) + len(
      results['throughput'])
  assert os.path.getsize(output / 'serving_results.png') > 0
