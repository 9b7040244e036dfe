"""Knobs (finsent.configs): each declared once, read as flags, from --config
files and by the Tuner; every command's --help without TensorFlow."""

import dataclasses
import json
import os
import subprocess
import sys

import pytest

from finsent import configs
from finsent.commands import cli
from finsent.commands import compile_kubeflow
from finsent.commands import run as run_command
from finsent.commands import train_worker
from finsent.configs import knobs

SECTIONS = (configs.PipelineConfig, configs.PreprocessingConfig,
            configs.RnnConfig, configs.TransformerConfig,
            configs.FineTuningConfig, configs.TrainingConfig,
            configs.TuningConfig, configs.BlessingThresholds,
            configs.DriftThresholds, configs.SelectionConfig,
            configs.ServingConfig, configs.BatchingConfig,
            configs.KubeflowConfig, configs.ContainerResources,
            configs.MonitorConfig, configs.ShockConfig, configs.ReplayConfig)


@pytest.mark.parametrize('section', SECTIONS, ids=lambda s: s.__name__)
def test_every_field_is_a_knob_with_help_or_a_section(section):
  declared = dict(knobs.knobs(section))
  for field in dataclasses.fields(section):
    if dataclasses.is_dataclass(field.default):
      continue
    assert field.name in declared, f'{section.__name__}.{field.name}'
    assert len(declared[field.name].help) > 10, field.name


def _write(tmp_path, text):
  path = tmp_path / 'settings.yaml'
  path.write_text(text)
  return str(path)


def test_a_config_file_sets_knobs_and_flags_beside_it_win(tmp_path):
  path = _write(tmp_path, '''
data: /data/headlines.csv
training:
  max_epochs: 5
  seed: 3
  profile_steps: [2, 4]
tuning:
  enabled: true
transformer:
  num_layers: 3
''')
  _, _, config = run_command.parse(['run', '--config', path, '--seed', '9'])
  assert config.data == '/data/headlines.csv'
  assert config.training.max_epochs == 5
  assert config.training.seed == 9          # the flag wins
  assert config.training.profile_steps == (2, 4)
  assert config.tuning.enabled
  assert config.transformer.num_layers == 3  # a knob with no flag
  assert config.rnn == configs.RnnConfig()


def test_train_worker_and_compile_kubeflow_read_the_same_file(tmp_path):
  path = _write(tmp_path, 'training:\n  max_epochs: 2\n  batch_size: 16\n'
                'preprocessing:\n  max_tokens: 24\n')
  _, worker = train_worker.parse(
      ['--config', path, '--architecture', 'rnn', '--transform_graph', 'g',
       '--transformed_examples', 'e', '--serving_model_dir', 's',
       '--model_run_dir', 'm'], 'finsent train-worker')
  assert (worker.training.max_epochs, worker.training.batch_size) == (2, 16)
  assert worker.trainer_custom_config('rnn')['training']['batch_size'] == 16
  defaults = knobs.load_defaults(
      ['--config', path], configs.PipelineConfig())
  parser = compile_kubeflow.build_parser('finsent compile-kubeflow', defaults)
  args, beam_args = parser.parse_known_args(['--image', 'gcr.io/p/f:1'])
  config, _ = compile_kubeflow._configs_from_args(parser, args, beam_args)
  assert config.training.max_epochs == 2
  assert config.preprocessing.max_tokens == 24


@pytest.mark.parametrize('text,message', [
    ('training:\n  max_epoch: 5\n',
     'training.max_epoch: not a setting; did you mean training.max_epochs?'),
    ('training:\n  max_epochs: 0\n',
     'training.max_epochs: must be at least 1, got 0'),
    ('training:\n  strategy: fast\n',
     "training.strategy: 'fast' is not one of auto, default, mirrored"),
    ('training:\n  seed: [1, 2]\n', 'training.seed: expected one value'),
    ('training:\n  label_smoothing: true\n',
     'training.label_smoothing: expected a number, got True'),
    ('training: 5\n', 'training: expected a mapping of settings, got 5'),
    ('data: 7\n', 'data: expected text, got 7'),
    ('training:\n  profile_steps: [1]\n',
     'training.profile_steps: expected 2 values, got 1'),
    ('training:\n  max_epochs: [\n', 'not YAML'),
])
def test_a_bad_config_file_is_refused_naming_file_and_key(
    tmp_path, capsys, text, message):
  path = _write(tmp_path, text)
  with pytest.raises(SystemExit) as exited:
    cli.main(['run', '--config', path, '--output_dir', str(tmp_path / 'o')])
  assert exited.value.code == 2
  err = capsys.readouterr().err
  assert f'--config: {path}: ' in err
  assert message in err
  assert not (tmp_path / 'o').exists()


def test_a_missing_config_file_is_refused(tmp_path, capsys):
  with pytest.raises(SystemExit) as exited:
    cli.main(['run', '--config', str(tmp_path / 'none.yaml')])
  assert exited.value.code == 2
  assert 'none.yaml: cannot read it: No such file' in capsys.readouterr().err


def test_a_dumped_config_reads_back_to_itself(tmp_path):
  config = dataclasses.replace(
      configs.PipelineConfig(), data_splits=(('train', 't.csv'),
                                             ('eval', 'e.csv')),
      beam_pipeline_args=('--runner=DirectRunner',),
      training=dataclasses.replace(configs.TrainingConfig(), tpu='local',
                                   profile_steps=(1, 2), warmup_epochs=0.5),
      tuning=configs.TuningConfig(enabled=True))
  path = _write(tmp_path, knobs.dump(config))
  assert knobs.load_file(path, configs.PipelineConfig()) == config


def test_the_tuner_searches_the_ranges_the_knobs_declare():
  keras_tuner = pytest.importorskip('keras_tuner')
  from finsent.models import tuner  # pylint: disable=g-import-not-at-top
  for architecture, section in tuner.MODEL_CONFIGS.items():
    hp = keras_tuner.HyperParameters()
    tuner.SEARCH_SPACES[architecture](hp, None)
    for name, knob in knobs.knobs(section):
      space = {p.name: p for p in hp.space}[name]
      if isinstance(knob.search, knobs.Choice) and name != 'num_heads':
        assert tuple(space.values) == knob.search.values
      elif isinstance(knob.search, knobs.FloatRange):
        assert (space.min_value, space.max_value, space.step) == (
            knob.search.low, knob.search.high, knob.search.step)
  learning_rate = knobs.knob_of(configs.TrainingConfig,
                                'learning_rate').search
  assert tuner.LEARNING_RATE_RANGE == (learning_rate.low, learning_rate.high)


_HELP_PROBE = '''
import contextlib, io, json, sys
from finsent.commands import cli
found = {}
for command in sys.argv[1:]:
  out = io.StringIO()
  with contextlib.redirect_stdout(out):
    try:
      cli.main([command, '--help'])
      code = 0
    except SystemExit as e:
      code = e.code
  found[command] = [code, out.getvalue()]
heavy = sorted(m for m in ('tensorflow', 'tfx', 'keras', 'apache_beam',
                           'tensorflow_transform', 'keras_hub')
               if m in sys.modules)
print(json.dumps({'help': found, 'heavy': heavy}))
'''


def test_every_command_prints_its_usage_without_loading_tensorflow():
  commands = list(cli._COMMANDS)
  result = subprocess.run([sys.executable, '-c', _HELP_PROBE, *commands],
                          capture_output=True, text=True, timeout=300,
                          check=False)
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stderr == ''
  found = json.loads(result.stdout.strip().splitlines()[-1])
  assert found['heavy'] == []
  for command, (code, text) in found['help'].items():
    assert code == 0, command
    prog = 'finsent' if command in ('run', 'summary') else f'finsent {command}'
    assert text.startswith(f'usage: {prog}'), (command, text[:200])


def test_the_installed_command_prints_only_its_usage():
  finsent = os.path.join(os.path.dirname(sys.executable), 'finsent')
  result = subprocess.run([finsent, 'run', '--help'], capture_output=True,
                          text=True, timeout=120, check=False)
  assert result.returncode == 0
  assert result.stderr == ''
  assert result.stdout.startswith('usage: finsent run')
  assert '--config FILE' in result.stdout
  assert 'Trainers (training' in result.stdout


def test_every_flag_of_a_section_is_named_like_its_knob():
  # One declaration: a knob's flag is its field name unless it says so.
  parser = run_command.build_parser()
  flags = {a.dest for a in parser._subparsers._group_actions[0].choices[
      'run']._actions}
  for section in (configs.PreprocessingConfig, configs.TrainingConfig,
                  configs.TuningConfig):
    for name, knob in knobs.knobs(section):
      assert (knob.flag or name) in flags, name


def test_a_time_in_a_config_file_stays_the_text_its_knob_reads(tmp_path):
  path = _write(tmp_path, 'start: 2026-03-02T00:00:00Z\nshock_size: 12\n')
  replay = knobs.load_file(path, configs.ReplayConfig())
  assert (replay.start, replay.shock_size) == ('2026-03-02T00:00:00Z', 12)
