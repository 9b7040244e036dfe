"""Distributed training for real, each run in its own `finsent train-worker`
process (strategies are fixed when TensorFlow starts): MirroredStrategy over
two logical CPU devices, MultiWorkerMirroredStrategy with two workers on
localhost, and the profile report on what the runs captured."""

import concurrent.futures
import dataclasses
import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from finsent.models import model_run
from finsent.commands import profile_report
from finsent.models import training_profile
from finsent import configs
from finsent.serving.server import model_manager
from finsent.serving.server.process import free_port
from tests.conftest import HEADLINES
from tests.conftest import predict_in_fresh_process

# What a Tuner found for the Transformer, in its best_hyperparameters.txt.
TUNED_VALUES = {'num_heads': 2, 'dropout': 0.2, 'learning_rate': 1e-3}
# Steps 3..6 of TrainingConfig.profile_steps fall inside 6 training steps.
TRAIN_STEPS = 6
PROFILED_STEPS = TRAIN_STEPS - configs.TrainingConfig().profile_steps[0] + 1


def _train_worker(sample, architecture, out_dir, *flags, env=None):
  """Starts `finsent train-worker`; returns the Popen. Its standard output
  goes to <architecture>.out, its log (stderr) to <architecture>.log."""
  stdout = open(os.path.join(out_dir, f'{architecture}.out'), 'w')
  stderr = open(os.path.join(out_dir, f'{architecture}.log'), 'w')
  return subprocess.Popen(
      [sys.executable, '-m', 'finsent.commands.cli', 'train-worker',
       '--architecture', architecture,
       '--transform_graph', sample.transform_graph,
       '--transformed_examples', sample.transformed_examples,
       '--serving_model_dir', os.path.join(out_dir, 'serving'),
       '--model_run_dir', os.path.join(out_dir, 'model_run'),
       '--train_steps', str(TRAIN_STEPS), '--pretrained_encoder', 'none',
       *flags],
      stdout=stdout, stderr=stderr, text=True,
      env={**os.environ, 'PYTHONPATH': os.getcwd(), **(env or {})})


def _finish(process, out_dir, architecture):
  """Waits for a worker; returns the training summary, the last line of its
  standard output. (Its log may go on after it: gRPC reports the other
  worker's channel closing as that one exits.)"""
  code = process.wait(timeout=600)
  with open(os.path.join(out_dir, f'{architecture}.out')) as f:
    output = f.read()
  with open(os.path.join(out_dir, f'{architecture}.log')) as f:
    log = f.read()
  assert code == 0, (output + log)[-4000:]
  return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope='module')
def mirrored_runs(transformed_sample, tmp_path_factory):
  """Both architectures trained under MirroredStrategy over 2 logical CPUs."""
  root = tmp_path_factory.mktemp('mirrored')
  out_dirs = {a: str(root / a) for a in configs.ARCHITECTURES}
  for out_dir in out_dirs.values():
    os.makedirs(out_dir)
  # The Transformer's worker takes a Tuner's result, as its artifact dir.
  tuned_dir = root / 'best_hyperparameters'
  tuned_dir.mkdir()
  (tuned_dir / 'best_hyperparameters.txt').write_text(
      json.dumps({'space': [], 'values': TUNED_VALUES}))
  processes = {a: _train_worker(
      transformed_sample, a, out_dirs[a], '--strategy', 'mirrored',
      '--cpu_replicas', '2',
      *(['--hyperparameters', str(tuned_dir)] if a == 'transformer' else []))
               for a in configs.ARCHITECTURES}
  return {a: (out_dirs[a], _finish(p, out_dirs[a], a))
          for a, p in processes.items()}


@pytest.mark.parametrize('architecture', configs.ARCHITECTURES)
def test_mirrored_over_two_cpus_trains_and_exports(mirrored_runs,
                                                   architecture):
  out_dir, summary = mirrored_runs[architecture]
  training = configs.TrainingConfig()
  assert summary['architecture'] == architecture
  assert summary['strategy'] == 'mirrored'
  assert summary['replicas'] == 2
  assert summary['task'] is None
  assert summary['global_batch_size'] == 2 * training.batch_size
  tuned = architecture == 'transformer'
  assert summary['tuned'] == tuned
  base_learning_rate = (TUNED_VALUES['learning_rate'] if tuned
                        else training.learning_rate)
  assert summary['learning_rate'] == pytest.approx(
      base_learning_rate * np.sqrt(2))
  if tuned:
    assert summary['hyperparameters'] == {
        **dataclasses.asdict(configs.TransformerConfig()), 'num_heads': 2,
        'dropout': 0.2}
  assert model_run.read_training_summary(
      os.path.join(out_dir, 'model_run')) == summary
  # The export of mirrored variables serves: in a fresh process with TF2's
  # loader, and with TF1's session loader as TF Serving loads it.
  export_dir = os.path.join(out_dir, 'serving')
  texts = [text for text, _ in HEADLINES]
  answer = predict_in_fresh_process(export_dir, texts)
  np.testing.assert_allclose(np.sum(answer['probabilities'], axis=1), 1.0,
                             rtol=1e-5)
  loaded = model_manager.LoadedVersion(architecture, 1, export_dir)
  served = loaded.run('serving_default', {'text': np.array(
      [t.encode() for t in texts], dtype=object)})
  np.testing.assert_allclose(served['probabilities'], answer['probabilities'],
                             rtol=1e-4, atol=1e-6)


def test_profile_report_side_by_side(mirrored_runs, tmp_path):
  runs = [os.path.join(mirrored_runs[a][0], 'model_run')
          for a in configs.ARCHITECTURES]
  chart, report_json = tmp_path / 'profile.png', tmp_path / 'profile.json'
  result = subprocess.run(
      [sys.executable, '-m', 'finsent.commands.cli', 'profile-report', *runs,
       '--chart', str(chart), '--json', str(report_json)],
      capture_output=True, text=True, timeout=300, check=False,
      env={**os.environ, 'PYTHONPATH': os.getcwd()})
  assert result.returncode == 0, result.stderr[-3000:]
  header = result.stdout.splitlines()[0].split()
  assert header == list(configs.ARCHITECTURES)
  assert chart.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  reports = {r['name']: r for r in json.loads(report_json.read_text())}
  for architecture, report in reports.items():
    assert report['steps'] == PROFILED_STEPS
    assert report['step_ms'] > 0
    shares = (report['compute_share'], report['input_share'],
              report['other_share'])
    assert all(0 <= s <= 1 for s in shares), shares
    assert sum(shares) == pytest.approx(1.0)
    assert report['compute_share'] > 0.5  # A training step computes.
    assert 0 < report['utilisation'] <= 1
    assert 0 < report['op_kernel_share'] <= 1
    assert report['input_bound'] in ('no', 'moderately', 'highly')
    assert report['top_ops'], architecture
    assert all(op['self_ms_per_step'] > 0 for op in report['top_ops'])
    assert report['strategy'] == 'mirrored'
    assert 0 <= report['loop_share'] <= 1
  # On a CPU the RNN's recurrence runs as a while loop; attention has none.
  assert reports['rnn']['loop_share'] > 0.05, reports['rnn']['top_ops']
  assert reports['transformer']['loop_share'] == 0


def test_profile_report_without_a_profile_says_where(tmp_path, capsys):
  assert profile_report.main([str(tmp_path)]) == 2
  error = capsys.readouterr().err
  assert f'{tmp_path}: no profile (plugins/profile/*/*.xplane.pb)' in error


def test_multi_worker_two_local_workers(transformed_sample, tmp_path):
  """Two workers on 127.0.0.1 train in step; the chief alone exports."""
  out_dir, scratch = tmp_path / 'out', tmp_path / 'scratch'
  out_dir.mkdir()
  scratch.mkdir()
  workers = [f'127.0.0.1:{free_port()}' for _ in range(2)]
  processes = []
  for index in range(2):
    tf_config = {'cluster': {'worker': workers},
                 'task': {'type': 'worker', 'index': index}}
    worker_dir = out_dir / f'worker{index}'
    worker_dir.mkdir()
    processes.append(_train_worker(
        transformed_sample, 'transformer', str(worker_dir),
        env={'TF_CONFIG': json.dumps(tf_config), 'TMPDIR': str(scratch)}))
  with concurrent.futures.ThreadPoolExecutor(2) as pool:
    summaries = list(pool.map(
        lambda i: _finish(processes[i], str(out_dir / f'worker{i}'),
                          'transformer'), range(2)))
  assert [s['task'] for s in summaries] == ['worker:0', 'worker:1']
  for summary in summaries:
    assert summary['strategy'] == 'multi_worker_mirrored'
    assert summary['replicas'] == 2
  # Synchronous training: both workers end with the same weights.
  assert summaries[0]['weights_sha256'] == summaries[1]['weights_sha256']
  # Exactly one exported model, the chief's; the other worker's scratch
  # export and logs are gone.
  exported = glob.glob(str(tmp_path / '**' / 'saved_model.pb'),
                       recursive=True)
  assert exported == [str(out_dir / 'worker0' / 'serving' / 'saved_model.pb')]
  assert not os.listdir(scratch)
  assert not (out_dir / 'worker1' / 'model_run').exists()
  assert model_run.read_training_summary(
      str(out_dir / 'worker0' / 'model_run')) == summaries[0]
  training_profile.find_profile(str(out_dir / 'worker0' / 'model_run'))


def test_bad_tuner_results_are_refused_before_training(tmp_path, capsys):
  from finsent.commands import train_worker
  empty, two_files, not_json, no_values, unknown = (
      tmp_path / name for name in ('empty', 'two', 'notjson', 'novalues',
                                   'unknown'))
  for directory, files in ((empty, {}),
                           (two_files, {'a.txt': '{}', 'b.txt': '{}'}),
                           (not_json, {'best_hyperparameters.txt': '{val'}),
                           (no_values, {'best_hyperparameters.txt': '[]'}),
                           (unknown, {'best_hyperparameters.txt': json.dumps(
                               {'values': {'rnn_units': 8}})})):
    directory.mkdir()
    for name, text in files.items():
      (directory / name).write_text(text)
  for directory, message in (
      (tmp_path / 'nowhere', "not a Tuner's best_hyperparameters artifact"),
      (empty, "not a Tuner's best_hyperparameters artifact: Only one file"),
      (two_files, "not a Tuner's best_hyperparameters artifact: Only one"),
      (not_json, 'best_hyperparameters.txt: not JSON'),
      (no_values, 'not a keras-tuner HyperParameters config (no "values")'),
      (unknown, "the tuned hyperparameters ['rnn_units'] are not arguments "
       'of the transformer builder')):
    assert train_worker.main([
        '--architecture', 'transformer', '--transform_graph', 'g',
        '--transformed_examples', 'e', '--serving_model_dir',
        str(tmp_path / 's'), '--model_run_dir', str(tmp_path / 'm'),
        '--hyperparameters', str(directory),
        '--pretrained_encoder', 'none']) == 2
    assert message in capsys.readouterr().err
  assert not (tmp_path / 's').exists()
