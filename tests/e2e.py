"""Runs `finsent run` as a user would, in a subprocess, for the end-to-end tests."""

import json
import os
import subprocess
import sys

from finsent import configs
from tests.conftest import ROOT


def command(output_dir, *flags):
  return [sys.executable, '-m', 'finsent.commands.cli', 'run', '--output_dir',
          str(output_dir), *flags]


def run_pipeline(output_dir, *flags, expect_code=0, timeout=1500):
  """Runs the pipeline CLI; returns (config, run summary dict, stdout).

  With `expect_code` other than 0 the summary is None and the third item
  is stderr.
  """
  result = subprocess.run(
      command(output_dir, *flags), capture_output=True, text=True,
      timeout=timeout, check=False, cwd=ROOT)
  assert result.returncode == expect_code, (result.stdout[-3000:] +
                                            result.stderr[-6000:])
  config = configs.PipelineConfig(output_dir=str(output_dir))
  if expect_code:
    return config, None, result.stderr
  with open(os.path.join(config.pipeline_root, 'run_summary.json')) as f:
    summary = json.load(f)
  return config, summary, result.stdout
