"""`finsent` command line: flags, Beam args, and bad data stopping the run early."""

import os
import subprocess
import sys

import pytest

from finsent.commands import cli
from finsent.commands import run as run_command


def test_flags_reach_the_config():
  parser_args = ['run', '--data', '/d.csv', '--output_dir', '/o',
                 '--strategy', 'mirrored', '--cpu_replicas', '2',
                 '--tpu', 'grpc://10.0.0.2:8470', '--max_epochs', '3',
                 '--train_steps', '7', '--skip_drift_check',
                 '--calibration', 'none',
                 '--early_stopping_monitor', 'val_macro_f1',
                 '--learning_rate_schedule', 'warmup_cosine',
                 '--warmup_epochs', '0.5', '--label_smoothing', '0.1',
                 '--focal_gamma', '2', '--seed', '7',
                 '--direct_running_mode=in_memory']
  _, _, config = run_command.parse(parser_args)
  assert config.data == '/d.csv'
  assert config.serving_root == '/o/serving_model'
  assert config.training.strategy == 'mirrored'
  assert config.training.cpu_replicas == 2
  assert config.training.tpu == 'grpc://10.0.0.2:8470'
  assert config.training.max_epochs == 3
  assert config.training.train_steps == 7
  assert config.training.calibration == 'none'
  assert config.training.early_stopping_monitor == 'val_macro_f1'
  assert (config.training.learning_rate_schedule,
          config.training.warmup_epochs,
          config.training.label_smoothing,
          config.training.focal_gamma,
          config.training.seed) == ('warmup_cosine', 0.5, 0.1, 2.0, 7)
  assert not config.check_drift
  assert config.beam_pipeline_args == (
      '--direct_num_workers=0', '--beam_plugins=finsent.data.beam_worker',
      '--direct_running_mode=in_memory')


@pytest.mark.parametrize('flags,message', [
    (['--max_epochs', '0'], 'argument --max_epochs: must be at least 1'),
    (['--max_epochs', 'many'], "argument --max_epochs: expected a whole number, got 'many'"),
    (['--train_steps', '0'], 'argument --train_steps: must be at least 1'),
    (['--strategy', 'tpu-please'],
     "argument --strategy: invalid choice: 'tpu-please'"),
    (['--cpu_replicas', '0'], 'argument --cpu_replicas: must be at least 1'),
    (['--class_weighting', 'inverse'], 'argument --class_weighting: invalid'),
    (['--calibration', 'platt'], 'argument --calibration: invalid'),
    (['--early_stopping_monitor', 'val_f1'],
     'argument --early_stopping_monitor: invalid'),
    (['--learning_rate_schedule', 'cyclic'],
     'argument --learning_rate_schedule: invalid'),
    (['--warmup_epochs', '-1'],
     'argument --warmup_epochs: must be at least 0, got -1'),
    (['--label_smoothing', '1'],
     'argument --label_smoothing: must be at least 0 and below 1, got 1'),
    (['--label_smoothing', 'nan'],
     'argument --label_smoothing: must be at least 0 and below 1, got nan'),
    (['--focal_gamma', '-0.5'],
     'argument --focal_gamma: must be at least 0, got -0.5'),
    (['--focal_gamma', 'inf'],
     'argument --focal_gamma: must be a finite number, got inf'),
    (['--tuner_max_trials', 'few'],
     "argument --tuner_max_trials: expected a whole number, got 'few'"),
    (['--seed', 'lucky'], "argument --seed: invalid int value: 'lucky'"),
    (['--label_smoothing', 'some'],
     "argument --label_smoothing: expected a number, got 'some'"),
    # Beam itself would drop it with a warning and run on DirectRunner.
    (['--runer=DataflowRunner'], 'unrecognized argument --runer: not a flag'),
    (['--runner=DataflowRunner'], '--runner=DataflowRunner needs --project'),
    (['--output_dir', 'gs://bucket/finsent'],
     '--output_dir gs://bucket/finsent: a local run keeps ML Metadata'),
    (['--distillation_temperature', '0'],
     'argument --distillation_temperature: must be above 0, got 0'),
    (['--distillation_alpha', '1.5'],
     'argument --distillation_alpha: must be at least 0 and at most 1, got '
     '1.5'),
    (['--student_tokens', 'letters'],
     "argument --student_tokens: invalid choice: 'letters'"),
    (['--unlabelled', 'gs://bucket/headlines.csv'],
     '--unlabelled gs://bucket/headlines.csv: a local run reads a local file'),
    (['--unlabelled', 'headlines.csv', '--pretrained_encoder', 'none'],
     '--unlabelled headlines.csv: unlabelled texts train only the fine-tuned '
     "encoder's students, and this run has none (--pretrained_encoder none)"),
    (['--unlabelled', 'headlines.csv', '--skip_distillation'],
     'and this run has none (--skip_distillation)'),
])
def test_bad_flags_are_rejected(capsys, flags, message):
  with pytest.raises(SystemExit) as exited:
    cli.main(['run', *flags])
  assert exited.value.code == 2
  assert message in capsys.readouterr().err


def _finsent(*args, cwd):
  return subprocess.run([sys.executable, '-m', 'finsent.commands.cli', *args],
                        capture_output=True, text=True, cwd=cwd, timeout=300,
                        check=False)


def test_bad_beam_arg_is_rejected(tmp_path):
  result = _finsent('run', 'stray', cwd=tmp_path)
  assert result.returncode == 2
  assert "unrecognized argument 'stray'" in result.stderr
  assert not os.listdir(tmp_path)


def test_bad_data_stops_the_process_before_the_pipeline(tmp_path):
  # The in-process cases are in test_data_gate.py; this one is the real
  # process: exit status and stderr.
  data = tmp_path / 'bad.csv'
  data.write_text('text,label\nup,positive\nflat,neutral\n')
  result = _finsent('run', '--data', str(data), '--output_dir',
                    str(tmp_path / 'out'), cwd=tmp_path)
  assert result.returncode == 2, result.stderr[-2000:]
  assert (f'finsent: error: {data}: no records labelled negative: the '
          'models need examples of every class') in result.stderr
  assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('tf_config,message', [
    (None, "strategy 'multi_worker_mirrored' needs TF_CONFIG"),
    ('{"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, '
     '"task": {"type": "worker", "index": 0}}',
     'the local pipeline runs its Trainers inside this one process'),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, '
     '"task": {"type": "worker", "index": 3}}',
     'is not a task of its cluster'),
    ('{cluster', 'TF_CONFIG is not JSON'),
])
def test_multi_worker_strategy_is_refused_before_the_pipeline(
    tmp_path, capsys, monkeypatch, tf_config, message):
  if tf_config is None:
    monkeypatch.delenv('TF_CONFIG', raising=False)
  else:
    monkeypatch.setenv('TF_CONFIG', tf_config)
  code = cli.main(['run', '--strategy', 'multi_worker_mirrored',
                   '--output_dir', str(tmp_path / 'out')])
  assert code == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()
