"""Runs `finsent run` as a user would, in a subprocess, for the end-to-end tests."""

import json
import os
import subprocess
import sys

from pipeline import configs


def run_pipeline(output_dir, *flags, timeout=1500):
  """Runs the pipeline CLI; returns (config paths, run summary dict)."""
  result = subprocess.run(
      [sys.executable, '-m', 'pipeline.cli', 'run', '--output_dir',
       str(output_dir), *flags],
      capture_output=True, text=True, timeout=timeout, check=False,
      cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  assert result.returncode == 0, (result.stdout[-3000:] +
                                  result.stderr[-6000:])
  config = configs.PipelineConfig(output_dir=str(output_dir))
  with open(os.path.join(config.pipeline_root, 'run_summary.json')) as f:
    summary = json.load(f)
  return config, summary, result.stdout
