"""What a user sees: `finsent run` on the bundled sample with Beam's
default runner (worker processes), stdout and stderr together as on a
terminal. At the default verbosity: the data's counts, one line per
component started and finished, the Trainers' progress, the summary;
nothing else (no tracebacks, no TensorFlow C++ lines, no library
warnings), on two screens."""

import os
import re
import subprocess

import pytest

from finsent import configs
from finsent.commands import run as run_command
from finsent.configs import knobs
from finsent.pipeline import local_runner
from finsent.pipeline import pipeline as pipeline_lib
from tests import e2e

pytestmark = pytest.mark.e2e

SUMMARY_START = re.compile(r'^Pipeline finsent, run \S+, \d+ s$')
# Every line before the summary is one of these.
PROGRESS_LINES = [
    re.compile(r'^Data: \S+$'),
    re.compile(r'^  (all \(hash-split \d+:\d+ into train/eval\)|train|eval):'
               r' \d+ records, \d+ negative, \d+ neutral, \d+ positive$'),
    re.compile(r'^(?P<component>[A-Za-z.]+) \.\.\.$'),
    re.compile(r'^(?P<component>[A-Za-z.]+) finished in \d+\.\d s$'),
    re.compile(r'^(rnn|transformer) +\[[#.]+\] +\d+/\d+ epochs  '
               r'val [a-zA-Z-]+ \d\.\d{3} \(best \d\.\d{3}\)  \d+ s$'),
    re.compile(r'^(rnn|transformer) +stopped early after \d+/\d+ epochs$'),
    re.compile(r'^$'),
]
# Two screens of a terminal.
MOST_LINES = 100


FLAGS = ('--max_epochs', '3')


@pytest.fixture(scope='module')
def output_dir(tmp_path_factory):
  return tmp_path_factory.mktemp('terminal')


@pytest.fixture(scope='module')
def terminal(output_dir):
  result = subprocess.run(
      e2e.command(output_dir, *FLAGS), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True, timeout=1500, check=False,
      cwd=e2e.ROOT)
  assert result.returncode == 0, result.stdout[-6000:]
  return result.stdout.splitlines()


def test_before_the_summary_only_progress(terminal):
  starts = [i for i, line in enumerate(terminal) if SUMMARY_START.match(line)]
  assert len(starts) == 1, '\n'.join(terminal[-80:])
  noise = [line for line in terminal[:starts[0]]
           if not any(p.match(line) for p in PROGRESS_LINES)]
  assert not noise, '\n'.join(noise[:40])


def test_every_component_starts_and_finishes_and_trainers_show_progress(
    terminal):
  text = '\n'.join(terminal)
  for node in ('TextExampleGen', 'StatisticsGen', 'DataGate', 'Transform',
               'ModelSelector', pipeline_lib.PRODUCTION_PUSHER,
               *(f'{kind}.{a}' for kind in ('Trainer', 'Evaluator', 'Pusher',
                                            pipeline_lib.SERVABILITY_GATE)
                 for a in configs.ARCHITECTURES)):
    assert f'\n{node} ...\n' in text, node
    assert re.search(rf'^{re.escape(node)} finished in \d+\.\d s$', text,
                     re.M), node
  for architecture in configs.ARCHITECTURES:
    assert re.search(rf'^{architecture} +\[[#.]+\] +1/3 epochs', text, re.M)
  assert 'resolver' not in text.split('Pipeline finsent, run')[0]


def test_nothing_else_and_two_screens(terminal):
  text = '\n'.join(terminal)
  for noise in ('Traceback', 'Exception ignored', 'WARNING', 'Warning:',
                'cuda', 'oneDNN', 'snappy'):
    assert noise not in text, noise
  assert len(terminal) <= MOST_LINES, len(terminal)


def test_the_saved_settings_read_back_to_the_run_s(terminal, output_dir):
  _, _, config = run_command.parse(['run', '--output_dir', str(output_dir),
                                    *FLAGS])
  saved = os.path.join(config.pipeline_root, local_runner.CONFIG_FILE)
  assert knobs.load_file(saved, configs.PipelineConfig()) == config
