"""End to end on the bundled sample: what the pipeline ships and refuses.

One pipeline (one output directory, one ML Metadata store, TFX's cache on)
goes through the runs a production pipeline sees, with real trainings:

1. `first`: a short training (5 epochs). Both architectures are trained,
   evaluated and pushed; the selector's winner becomes production version 1.
   Both are also scored on FinEntity, a second source never trained on.
2. `crippled`: one training step each, after a TFX Tuner of one trial.
   Nothing is blessed, nothing pushed: version 1 stays the newest.
3. `killed`: a full training, SIGKILLed while the second Trainer runs.
4. `rerun`: the same run again. Finished components come from the cache;
   the better candidate is pushed as exactly one new version; MLMD and the
   serving directory stay consistent.
5. `repeat`: the same run once more, trainings from the cache: the same
   models are blessed again (against themselves) but nothing is pushed.
6. `drifted`: the label mix moves far from the accepted data: the data gate
   stops the run, nothing is trained or pushed.

Every run uses Beam's in-memory DirectRunner: on 1,200 rows, starting the
default's worker processes costs more than the work (a first run takes
184 s in memory against 248 s with them). The default runner is exercised
end to end by tests/test_twitter_fns_e2e.py.
"""

import csv
import glob
import os
import re
import signal
import subprocess
import time

import pytest
import tensorflow_model_analysis as tfma
import tensorflow_transform as tft
from ml_metadata.proto import metadata_store_pb2

from finsent.components import model_selector
from finsent.data import loaders
from finsent.models import calibration
from finsent.configs import features
from finsent import configs
from finsent.pipeline import pipeline as pipeline_lib
from finsent.pipeline import summary as summary_lib
from tests import e2e
from tests.conftest import ROOT
from tests.conftest import predict_in_fresh_process

pytestmark = pytest.mark.e2e

# One runner for every run: TFX's cache key includes the Beam args.
# The models trained from scratch: five runs of the fine-tuned encoder
# would cost minutes each (tests/test_encoder_e2e.py runs it once).
CACHED = ('--enable_cache', '--direct_running_mode=in_memory',
          '--pretrained_encoder', 'none')
# Reuters passages (../shared/data/finentity/SOURCE.txt): 851 rows.
FINENTITY = os.path.join(ROOT, '..', 'shared', 'data', 'finentity',
                         'finentity_sentences.csv')
FIRST_FLAGS = (*CACHED, '--max_epochs', '5', '--second_source', FINENTITY)
FULL_FLAGS = CACHED
# Unchanged data: reused from TFX's cache. The drift check and the gate run
# again every time, against the newest accepted data.
CACHED_DATA_NODES = ['ImportSchemaGen', 'TextExampleGen', 'StatisticsGen',
                     'ExampleValidator', 'Transform']
NODES = sorted(
    CACHED_DATA_NODES +
    ['DistributionValidator', 'DataGate', 'ModelSelector',
     pipeline_lib.BASELINE_STATISTICS_RESOLVER] +
    [f'Trainer.{a}' for a in configs.ARCHITECTURES] +
    [f'{node}.{name}'
     for name in configs.ARCHITECTURES + (pipeline_lib.PRODUCTION,)
     for node in (pipeline_lib.BLESSED_MODEL_RESOLVER, 'Evaluator',
                  pipeline_lib.SERVABILITY_GATE, 'Pusher')])
# The first run's, with --second_source.
SECOND_SOURCE_NODES = [pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN] + [
    f'{pipeline_lib.SECOND_SOURCE_EVALUATOR}.{a}'
    for a in configs.ARCHITECTURES]


def _versions(snapshot, model_name):
  """Integer versions of a served model in a `_serving_snapshot`."""
  return sorted(int(path.split('/')[1]) for path in snapshot
                if path.count('/') == 1 and path.startswith(f'{model_name}/')
                and path.split('/')[1].isdigit())


def _serving_snapshot(config):
  """Every entry under the serving root (hidden staging dirs included)."""
  return sorted(os.path.relpath(os.path.join(d, n), config.serving_root)
                for d, dirs, files in os.walk(config.serving_root)
                for n in dirs + files)


def _kill_during_second_trainer(output_dir):
  """Starts a full run and SIGKILLs its process group mid-Trainer."""
  process = subprocess.Popen(
      e2e.command(output_dir, *FULL_FLAGS), stdout=subprocess.PIPE,
      stderr=subprocess.STDOUT, text=True, cwd=e2e.ROOT,
      start_new_session=True)
  marker = f'Trainer.{configs.ARCHITECTURES[-1]} ...'
  lines = []
  try:
    for line in process.stdout:
      lines.append(line)
      if marker in line:
        time.sleep(5)  # into the middle of the training
        os.killpg(process.pid, signal.SIGKILL)
        break
  finally:
    process.wait(timeout=120)
  assert process.returncode == -signal.SIGKILL, ''.join(lines[-50:])


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  output_dir = tmp_path_factory.mktemp('pipeline')
  config, first, first_stdout = e2e.run_pipeline(output_dir, *FIRST_FLAGS)
  after_first = _serving_snapshot(config)
  # With a Tuner of one trial, which TrainArgs also caps at one step.
  _, crippled, _ = e2e.run_pipeline(output_dir, *CACHED,
                                    '--train_steps', '1', '--enable_tuning',
                                    '--tuner_max_trials', '1')
  after_crippled = _serving_snapshot(config)
  _kill_during_second_trainer(output_dir)
  after_kill = _serving_snapshot(config)
  _, rerun, _ = e2e.run_pipeline(output_dir, *FULL_FLAGS)
  after_rerun = _serving_snapshot(config)
  _, repeat, repeat_stdout = e2e.run_pipeline(output_dir, *FULL_FLAGS)

  drifted_data = tmp_path_factory.mktemp('drifted') / 'drifted.csv'
  _write_drifted_sample(drifted_data)
  after_repeat = _serving_snapshot(config)
  _, _, drift_error = e2e.run_pipeline(
      output_dir, *CACHED, '--data', str(drifted_data),
      expect_code=2)
  return {
      'output_dir': output_dir,
      'config': config, 'first': first, 'first_stdout': first_stdout,
      'crippled': crippled, 'rerun': rerun, 'repeat': repeat,
      'repeat_stdout': repeat_stdout,
      'drift_error': drift_error,
      'serving': {'first': after_first, 'crippled': after_crippled,
                  'killed': after_kill, 'rerun': after_rerun,
                  'repeat': after_repeat,
                  'drifted': _serving_snapshot(config)},
  }


def _write_drifted_sample(path):
  """The sample with most non-negative rows left out: 360/120/90."""
  kept = {'negative': 1, 'neutral': 4, 'positive': 4}  # keep every n-th
  seen = dict.fromkeys(kept, 0)
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['text', 'label'])
    for record in loaders.read_records(configs.SAMPLE_DATA):
      seen[record.label] += 1
      if seen[record.label] % kept[record.label] == 0:
        writer.writerow([record.text, record.label])


def _one(pattern):
  matches = glob.glob(pattern)
  assert len(matches) == 1, (pattern, matches)
  return matches[0]


def _states(summary):
  return {c['node_id']: c['state'] for c in summary['components']}


def test_first_run_completes_every_component(runs):
  states = _states(runs['first'])
  assert sorted(states) == sorted(NODES + SECOND_SOURCE_NODES)
  # TFX records a resolver that finds nothing as failed: there is no
  # accepted data before the first run.
  assert states.pop(pipeline_lib.BASELINE_STATISTICS_RESOLVER) == 'FAILED'
  assert set(states.values()) == {'COMPLETE'}, states
  stdout = runs['first_stdout']
  for column in ('accuracy', 'macro-F1', 'neg.rec', 'params', 'train s',
                 'p50 ms', 'servable'):
    assert column in stdout
  assert 'Production (sentiment): selected ' in stdout
  assert 'tensorboard --logdir_spec' in stdout
  # One device here: the default strategy; both profiles side by side.
  assert 'trained with: default x1' in stdout
  assert re.search(r'calibration \(eval split ECE before -> after the '
                   r'temperature T\): rnn T=[\d.]+ [\d.]+ -> [\d.]+, '
                   r'transformer T=', stdout), stdout
  assert re.search(r'training profile: rnn [\d.]+ ms/step .* \| '
                   r'transformer [\d.]+ ms/step', stdout), stdout


def test_the_first_run_prints_only_progress_and_its_summary(runs):
  # Beam in memory here: tests/test_twitter_fns_e2e.py checks a run with
  # Beam's worker processes.
  e2e.check_quiet_terminal(runs['first_stdout'])
  # The last run that got as far as saving its settings: `repeat`.
  e2e.check_saved_settings(runs['output_dir'], *FULL_FLAGS)


def test_examples_carry_the_length_bucket_and_the_curated_schema(runs):
  root = runs['config'].pipeline_root
  for split in ('train', 'eval'):
    assert glob.glob(f'{root}/TextExampleGen/examples/*/Split-{split}/*.gz')
  schema = _one(f'{root}/ImportSchemaGen/schema/*/schema.pbtxt')
  with open(schema) as imported, open(configs.SCHEMA_FILE) as curated:
    assert imported.read() == curated.read()
  assert glob.glob(f'{root}/DataGate/validated_statistics/*/Split-train/*')


def test_transform_graph(runs):
  graph = _one(f'{runs["config"].pipeline_root}/Transform/transform_graph/*')
  output = tft.TFTransformOutput(graph)
  assert output.transformed_feature_spec()[features.TOKEN_IDS_KEY].shape == [
      configs.PreprocessingConfig().max_tokens]
  assert output.vocabulary_size_by_name(features.TOKEN_VOCABULARY_NAME) > 500


@pytest.mark.parametrize('architecture', configs.ARCHITECTURES)
def test_each_architecture_is_evaluated_sliced_and_pushed(runs, architecture):
  config, summary = runs['config'], runs['first']
  root = config.pipeline_root
  assert glob.glob(f'{root}/Trainer.{architecture}/model_run/*/'
                   'train/plugins/profile/*/*.xplane.pb'), 'no profile'
  evaluation = glob.glob(f'{root}/Evaluator.{architecture}/evaluation/*')[0]
  slices = {tuple(m.slice_key.single_slice_keys and
                  [k.column for k in m.slice_key.single_slice_keys])
            for m in tfma.load_metrics(evaluation)}
  assert {(), ('source',), ('length_bucket',)} <= slices

  result = next(m for m in summary['models']
                if m['architecture'] == architecture)
  metrics = result['metrics']
  thresholds = configs.BlessingThresholds()
  assert metrics['accuracy'] >= thresholds.min_accuracy
  assert metrics['macro_f1'] >= thresholds.min_macro_f1
  assert 0 <= metrics['brier_score'] <= 2
  assert 0 <= metrics['expected_calibration_error'] <= 1
  assert set(f'recall_{label}' for label in features.LABELS) <= set(metrics)
  assert result['blessed'] and result['servable'] and result['parameters'] > 0
  assert result['p50_latency_ms'] > 0
  profile = result['profile']
  first, last = configs.TrainingConfig().profile_steps
  assert profile['steps'] == last - first + 1 and profile['step_ms'] > 0
  assert result['replicas'] == 1 and result['profile_problem'] is None
  fitted = result['calibration']
  lowest, highest = calibration.TEMPERATURE_RANGE
  assert lowest <= fitted['temperature'] <= highest
  # Fitted to minimise the held-out NLL, of which T = 1 is one candidate.
  assert fitted['held_out']['nll_after'] <= fitted['held_out']['nll_before']
  # The Trainer and the Evaluator measure the same exported model on the
  # same eval split with the same ECE.
  assert fitted['eval']['ece_after'] == pytest.approx(
      metrics['expected_calibration_error'], abs=2e-3)
  pushed = result['pushed_to']
  assert os.path.dirname(pushed) == os.path.join(
      config.serving_root, config.serving_model_name(architecture))
  answer = predict_in_fresh_process(
      pushed, ['Shares plunge after the company cuts its outlook',
               'Board to meet on Tuesday'])
  assert set(answer['labels']) <= set(features.LABELS)
  assert answer['examples_labels'] == answer['labels']


def test_the_second_source_is_scored_beside_the_eval_split(runs):
  first, stdout = runs['first'], runs['first_stdout']
  assert first['second_source'] == os.path.abspath(FINENTITY)
  for model in first['models']:
    scored, metrics = model['second_source'], model['metrics']
    # Every row, none hash-split away; the eval split is the sample's.
    assert scored['example_count'] == 851
    assert metrics['example_count'] < 851
    assert 0 <= scored['accuracy'] <= 1 and 0 <= scored['macro_f1'] <= 1
    row = next(line for line in stdout.splitlines()
               if line.startswith(f'  {model["architecture"]} '))
    assert row.split()[1:5] == [
        f'{metrics["accuracy"]:.4f}', f'{metrics["macro_f1"]:.4f}',
        f'{scored["accuracy"]:.4f}', f'{scored["macro_f1"]:.4f}']
  assert re.search(r'^  model +accuracy macro-F1  2nd acc   2nd F1 ', stdout,
                   re.M), stdout
  assert (f'(2nd acc, 2nd F1: TFMA on the second source '
          f'{os.path.abspath(FINENTITY)}, 851 examples, never trained on'
          in stdout)
  # Without --second_source (the later runs) the DAG and summary are as
  # before.
  crippled = runs['crippled']
  assert crippled['second_source'] is None
  assert not [n for n in _states(crippled) if pipeline_lib.SECOND_SOURCE in n]
  assert all(m['second_source'] is None for m in crippled['models'])


def test_first_winner_becomes_production_version_one(runs):
  config, production = runs['config'], runs['first']['production']
  assert production['selected'] in configs.ARCHITECTURES
  assert production['blessed'] and not production['baseline']
  assert production['servable'] and not production['serving_problems']
  versions = _versions(runs['serving']['first'],
                       configs.PRODUCTION_MODEL_NAME)
  assert len(versions) == 1
  assert production['pushed_to'] == os.path.join(
      config.serving_root, configs.PRODUCTION_MODEL_NAME, str(versions[0]))
  answer = predict_in_fresh_process(production['pushed_to'],
                                    ['Shares plunge after a profit warning'])
  assert answer['labels'][0] in features.LABELS


def test_crippled_candidates_are_refused_and_nothing_is_pushed(runs):
  crippled = runs['crippled']
  states = _states(crippled)
  for node in CACHED_DATA_NODES:
    assert states[node] == 'CACHED', (node, states[node])
  production = crippled['production']
  assert production['baseline'] and not production['blessed']
  assert production['pushed_to'] is None
  failures = production['failures']
  max_drop = configs.BlessingThresholds().max_drop_from_baseline
  assert any(f.startswith('macro_f1 value ') for f in failures), failures
  assert any(f.startswith('macro_f1 change vs the baseline -') and
             f.endswith(f'is below {-max_drop:+.4f}')
             for f in failures), failures
  for model in crippled['models']:
    assert states[f'Tuner.{model["architecture"]}'] == 'COMPLETE'
    assert model['tuned'] and model['hyperparameters']
    assert not model['blessed'] and model['pushed_to'] is None
    assert model['servable'] is False  # not served: nothing to push
  assert runs['serving']['crippled'] == runs['serving']['first']


def test_killed_run_leaves_no_trace_in_serving(runs):
  assert runs['serving']['killed'] == runs['serving']['first']


def test_rerun_after_kill_uses_the_cache_and_pushes_one_version(runs):
  rerun = runs['rerun']
  states = _states(rerun)
  for node in CACHED_DATA_NODES + [f'Trainer.{configs.ARCHITECTURES[0]}']:
    assert states[node] == 'CACHED', (node, states[node])
  assert states[f'Trainer.{configs.ARCHITECTURES[-1]}'] == 'COMPLETE'
  production = rerun['production']
  assert production['baseline'] and production['blessed']
  versions = _versions(runs['serving']['rerun'],
                       configs.PRODUCTION_MODEL_NAME)
  assert versions[0] == _versions(runs['serving']['first'],
                                  configs.PRODUCTION_MODEL_NAME)[0]
  assert len(versions) == 2
  assert production['pushed_to'].endswith(f'/{versions[-1]}')
  assert not [p for p in runs['serving']['rerun']
              if os.path.basename(p).startswith('.')], 'staging left behind'


def test_a_repeated_run_pushes_nothing_again(runs):
  repeat = runs['repeat']
  states = _states(repeat)
  for architecture in configs.ARCHITECTURES:
    assert states[f'Trainer.{architecture}'] == 'CACHED'
  # The Evaluators run again (their baseline is now the very same model)
  # and bless it against itself; the Pushers find it is the newest version.
  for model in repeat['models']:
    assert model['blessed'] and model['already_pushed'], model
    assert model['pushed_to'] is None
  production = repeat['production']
  assert production['blessed'] and production['already_pushed']
  assert production['pushed_to'] is None
  assert 'it is the production model already' in runs['repeat_stdout']
  assert runs['serving']['repeat'] == runs['serving']['rerun']


def test_metadata_is_consistent_after_the_kill(runs):
  store = summary_lib.open_metadata_store(runs['config'])
  for artifact in store.get_artifacts():
    if artifact.state == metadata_store_pb2.Artifact.LIVE:
      assert os.path.exists(artifact.uri), artifact
  # The killed Trainer's execution never finished: its outputs were never
  # published, so no later run can resolve them.
  killed = [e for e in store.get_executions()
            if e.last_known_state == metadata_store_pb2.Execution.RUNNING]
  assert killed, 'the kill left no unfinished execution'
  outputs = [ev.artifact_id for ev in store.get_events_by_execution_ids(
      [e.id for e in killed]) if ev.type == metadata_store_pb2.Event.OUTPUT]
  assert all(a.state != metadata_store_pb2.Artifact.LIVE
             for a in store.get_artifacts_by_id(outputs))
  for artifact in store.get_artifacts_by_type('PushedModel'):
    props = artifact.custom_properties
    if props.get('pushed') and props['pushed'].int_value == 1:
      destination = props['pushed_destination'].string_value
      assert os.path.exists(os.path.join(destination, 'saved_model.pb'))


def test_selector_decision_is_readable_from_metadata(runs):
  store = summary_lib.open_metadata_store(runs['config'])
  node = store.get_context_by_type_and_name(
      'node', f'{configs.PIPELINE_NAME}.ModelSelector')
  # The node's context holds its inputs too: the outputs are the Models
  # that carry a decision.
  selections = [a for a in store.get_artifacts_by_context(node.id)
                if a.state == metadata_store_pb2.Artifact.LIVE and
                model_selector.SELECTED_ARCHITECTURE in a.custom_properties]
  assert len(selections) == 4  # first, crippled, rerun, repeat
  for selection in selections:
    props = selection.custom_properties
    winner = props[model_selector.SELECTED_ARCHITECTURE].string_value
    assert winner in configs.ARCHITECTURES
    assert props[model_selector.SELECTION_REASON].string_value.startswith(
        f'{winner}: ')
    for architecture in configs.ARCHITECTURES:
      for metric in ('macro_f1', 'accuracy', 'recall_negative',
                     model_selector.P50_LATENCY_MS):
        assert f'{architecture}_{metric}' in props, (architecture, metric)
    f1 = {a: props[f'{a}_macro_f1'].double_value
          for a in configs.ARCHITECTURES}
    margin = configs.SelectionConfig().macro_f1_margin
    assert f1[winner] >= max(f1.values()) - margin


def test_drifted_data_is_stopped_by_the_gate(runs):
  terminal = runs['drift_error']
  # The last thing it printed.
  error = terminal[terminal.rindex('finsent: error: '):]
  assert error.startswith('finsent: error: the data gate stopped the run')
  assert 'drift: train_train: label: The Linfty distance' in error
  assert runs['serving']['drifted'] == runs['serving']['repeat']
