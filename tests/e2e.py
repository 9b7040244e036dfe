"""Runs `finsent run` as a user would, in a subprocess, for the end-to-end
tests; and what its terminal may show."""

import json
import os
import re
import subprocess
import sys

from finsent import configs
from finsent.commands import run as run_command
from finsent.configs import knobs
from finsent.pipeline import local_runner
from finsent.pipeline import pipeline as pipeline_lib
from tests.conftest import ROOT


def command(output_dir, *flags):
  return [sys.executable, '-m', 'finsent.commands.cli', 'run', '--output_dir',
          str(output_dir), *flags]


def run_pipeline(output_dir, *flags, expect_code=0, timeout=1500):
  """Runs the pipeline CLI; returns (config, run summary dict, terminal).

  The terminal is stdout and stderr together, as a terminal shows them.
  With `expect_code` other than 0 the summary is None.
  """
  result = subprocess.run(
      command(output_dir, *flags), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False,
      cwd=ROOT)
  assert result.returncode == expect_code, result.stdout[-8000:]
  config = configs.PipelineConfig(output_dir=str(output_dir))
  if expect_code:
    return config, None, result.stdout
  with open(os.path.join(config.pipeline_root, 'run_summary.json')) as f:
    summary = json.load(f)
  return config, summary, result.stdout


# A Trainer's bar: off a terminal, a line per epoch; a bar per model
# (`transformer.topic`) where a Trainer trains a model per head.
PROGRESS_BARS = [
    # `val accuracy 0.734`; with a topic head `val sentiment accuracy ...`.
    re.compile(r'^[a-z_]+(\.[a-z]+)? +\[[#.]+\] +\d+/\d+ epochs  '
               r'val [a-zA-Z -]+ \d\.\d{3} \(best \d\.\d{3}\)  \d+ s$'),
    re.compile(r'^[a-z_]+(\.[a-z]+)? +stopped early after \d+/\d+ epochs$'),
]
# What `finsent run` shows at its default verbosity, before the summary.
SUMMARY_START = re.compile(r'^Pipeline finsent, run \S+, \d+ s$', re.M)
PROGRESS_LINES = [
    re.compile(r'^Data: \S+$'),
    re.compile(r'^  (all \(hash-split \d+:\d+ into train/eval\)|train|eval):'
               r' \d+ records, \d+ negative, \d+ neutral, \d+ positive$'),
    re.compile(r'^  not read \(in neither split\): .+$'),
    # With --topic_data.
    re.compile(r'^Topic data \(the models learn topics from it\): '
               r'\S+$'),
    re.compile(r'^  (all \(hash-split \d+:\d+ into train/eval\)|train|eval):'
               r' \d+ records, \d+ with a topic \(\d+ topics\)$'),
    # With --second_source.
    re.compile(r'^Second source \(scored, never trained on\): \S+$'),
    re.compile(r'^  \d+ records, \d+ negative, \d+ neutral, \d+ positive$'),
    # With --unlabelled.
    re.compile(r"^Unlabelled texts \(the students learn the teacher's "
               r'probabilities on them\): \S+$'),
    re.compile(r'^  \d+ texts in \d+ files?$'),
    # Node ids: `Evaluator.rnn`, `Evaluator.second_source.rnn`.
    re.compile(r'^[A-Za-z_.]+ \.\.\.$'),
    re.compile(r'^[A-Za-z_.]+ finished in \d+\.\d s$'),
    *PROGRESS_BARS,
    re.compile(r'^$'),
]
# TensorFlow's grappler, when BulkInferrer's session (tfx_bsl's, TF 1
# style) runs the fine-tuned encoder, warns that it cannot cost a Softmax
# of unknown rank (tensorflow/tensorflow#50575). It logs through absl in
# C++, which TF_CPP_MIN_LOG_LEVEL does not govern, from inside TFX's own
# component: known, harmless, and left out of the count below.
TENSORFLOW_COST_NOISE = [
    re.compile(r'^WARNING: All log messages before absl::InitializeLog\(\) '
               r'is called are written to STDERR$'),
    re.compile(r'^W0000 00:00:\d+\.\d+ +\d+ op_level_cost_estimator\.cc:\d+\] '
               r'Error in PredictCost\(\) for the op: op: "Softmax" '),
]
# Besides the line each component prints as it starts and as it finishes
# and the Trainers' bars (which grow with the DAG and the epochs): the
# data's counts and the summary, about a screen of a terminal.
MOST_OTHER_LINES = 50
COMPONENT_LINE = re.compile(r'^[A-Za-z_.]+ (\.\.\.|finished in \d+\.\d s)$')


def check_quiet_terminal(terminal: str, candidates=configs.ARCHITECTURES
                         ) -> None:
  """Asserts `terminal` (a whole run at the default verbosity) holds only
  the data's counts, a line per component started and finished, the
  Trainers' progress (one per candidate) and the summary: no tracebacks,
  TensorFlow C++ lines or library warnings."""
  terminal = '\n'.join(line for line in terminal.split('\n')
                       if not any(p.match(line) for p in TENSORFLOW_COST_NOISE))
  starts = list(SUMMARY_START.finditer(terminal))
  assert len(starts) == 1, terminal[-6000:]
  before = terminal[:starts[0].start()].splitlines()
  noise = [line for line in before
           if not any(p.match(line) for p in PROGRESS_LINES)]
  assert not noise, '\n'.join(noise[:40])
  for node in ('TextExampleGen', 'StatisticsGen', 'DataGate', 'Transform',
               'ModelSelector', pipeline_lib.PRODUCTION_PUSHER,
               *(f'{kind}.{a}' for kind in ('Trainer', 'Evaluator', 'Pusher',
                                            pipeline_lib.SERVABILITY_GATE)
                 for a in candidates)):
    assert f'\n{node} ...\n' in terminal, node
    assert re.search(rf'^{re.escape(node)} finished in \d+\.\d s$', terminal,
                     re.M), node
  for candidate in candidates:
    assert re.search(rf'^{candidate}(\.[a-z]+)? +\[[#.]+\] +1/\d+ epochs',
                     terminal, re.M), candidate
  assert 'resolver' not in '\n'.join(before)
  for noise in ('Traceback', 'Exception ignored', 'WARNING', 'Warning:',
                'cuda', 'oneDNN', 'snappy'):
    assert noise not in terminal, noise
  other = [line for line in terminal.splitlines()
           if not any(p.match(line) for p in [COMPONENT_LINE, *PROGRESS_BARS])]
  assert len(other) <= MOST_OTHER_LINES, '\n'.join(other)


def check_saved_settings(output_dir, *flags) -> None:
  """Asserts the run's run_config.yaml reads back to the settings that
  `finsent run --output_dir output_dir *flags` parses to."""
  _, _, config = run_command.parse(['run', '--output_dir', str(output_dir),
                                    *flags])
  saved = os.path.join(config.pipeline_root, local_runner.CONFIG_FILE)
  assert knobs.load_file(saved, configs.PipelineConfig()) == config


# Headlines any sentiment model worth pushing calls right.
CLEARLY_NEGATIVE = [
    'Acme issues profit warning, shares plunge 18% as guidance is slashed',
    '$XYZ downgraded to sell at Morgan Stanley on weak demand',
]
CLEARLY_POSITIVE = [
    'Acme beats earnings estimates and raises full-year guidance, stock jumps',
    '$XYZ upgraded to buy at Goldman, price target raised to $250',
]
