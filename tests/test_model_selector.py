"""components.model_selector: the tournament's rule on plain figures, the
executor on real SavedModels (2 and 3 candidates, a student that did not
resolve), and the component's refusals."""

import dataclasses
import os
import shutil

import pytest
import tensorflow as tf
from tensorflow_model_analysis.proto import metrics_for_slice_pb2
from tfx import types
from tfx.dsl.compiler import compiler
from tfx.dsl.components.common import importer
from tfx.orchestration import pipeline as tfx_pipeline
from tfx.types import standard_artifacts

from finsent import configs
from finsent.components import model_selector
from finsent.models import evaluation
from tests.conftest import artifact as _artifact
from tests.conftest import eval_examples_artifact
from tests.conftest import HEADLINES

FASTEST = model_selector.FASTEST_WITHIN_MARGIN
BEST = model_selector.BEST_MACRO_F1
HPS = model_selector.HEADLINES_PER_SECOND
P50 = model_selector.P50_LATENCY_MS


def _candidate(macro_f1, headlines_per_second=1000.0, p50_ms=1.0, blessed=1,
               parameters=1000):
  return {model_selector.MACRO_F1: macro_f1, P50: p50_ms,
          HPS: headlines_per_second,
          model_selector.PARAMETERS: float(parameters),
          model_selector.BLESSED: blessed}


def _select(candidates, rule=FASTEST, margin=0.01, speed=HPS):
  return model_selector.select(candidates, rule, margin, speed)


# --- select(): the rule ---


def test_the_defaults_are_the_fastest_within_001_by_throughput():
  selection = configs.SelectionConfig()
  assert (selection.rule, selection.macro_f1_margin, selection.speed,
          selection.throughput_batch_size) == (FASTEST, 0.01, HPS, 256)
  assert configs.SelectionConfig.RULES == (FASTEST, BEST)
  assert configs.SelectionConfig.SPEEDS == (HPS, P50)


def test_the_fastest_within_the_margin_wins():
  winner, reason = _select({
      'transformer': _candidate(0.800, 140, 9.0, parameters=22_713_984),
      'rnn_student': _candidate(0.792, 2500, 1.5, parameters=310_000),
      'transformer_student': _candidate(0.795, 1800, 2.0)})
  assert winner == 'rnn_student'
  assert reason == (
      'rnn_student: the fastest by headlines/s (2,500 headlines/s) of the '
      '3 within 0.01 macro-F1 of the best (transformer 0.8000) (rule '
      'fastest_within_margin); macro-F1 0.7920, p50 1.50 ms, 2,500 '
      'headlines/s, 310,000 parameters, blessed; vs transformer macro-F1 '
      '0.8000, p50 9.00 ms, 140 headlines/s, 22,713,984 parameters, '
      'blessed; transformer_student macro-F1 0.7950, p50 2.00 ms, 1,800 '
      'headlines/s, 1,000 parameters, blessed')


def test_outside_the_margin_speed_does_not_count():
  winner, reason = _select({'transformer': _candidate(0.80, 140),
                            'rnn_student': _candidate(0.78, 2500)})
  assert winner == 'transformer'
  assert reason.startswith('transformer: highest macro-F1 (0.8000), no '
                           'other within 0.01 (rule fastest_within_margin)')


def test_the_margin_is_inclusive_despite_float_noise():
  # 0.74 - 0.73 is 0.010000000000000009 in floating point.
  assert _select({'transformer': _candidate(0.74, 100),
                  'rnn': _candidate(0.73, 900)})[0] == 'rnn'
  assert _select({'transformer': _candidate(0.74, 100),
                  'rnn': _candidate(0.73, 900)}, margin=0.005)[0] == (
                      'transformer')


@pytest.mark.parametrize('speed, expected', [(HPS, 'transformer_student'),
                                             (P50, 'rnn_student')])
def test_the_speed_knob_decides_what_fastest_means(speed, expected):
  # Batched throughput and batch-1 latency may disagree.
  candidates = {'transformer_student': _candidate(0.80, 3000, p50_ms=2.0),
                'rnn_student': _candidate(0.80, 1500, p50_ms=0.8)}
  winner, reason = _select(candidates, speed=speed)
  assert winner == expected
  label = 'headlines/s' if speed == HPS else 'p50 latency'
  assert reason.startswith(f'{expected}: the fastest by {label} (')


def test_best_macro_f1_wins_even_when_slower():
  winner, reason = _select({'transformer': _candidate(0.801, 140, 9.0),
                            'rnn_student': _candidate(0.800, 2500, 1.0)},
                           rule=BEST)
  assert winner == 'transformer'
  assert reason.startswith('transformer: highest macro-F1 (0.8010) (rule '
                           'best_macro_f1); macro-F1 0.8010')


def test_best_macro_f1_breaks_an_exact_tie_by_speed():
  winner, reason = _select({'rnn': _candidate(0.75, 900, 2.0),
                            'transformer': _candidate(0.75, 400, 1.0)},
                           rule=BEST, speed=P50)
  assert winner == 'transformer'
  assert reason.startswith('transformer: highest macro-F1 (0.7500), tied '
                           'exactly with rnn, and the fastest by p50 latency '
                           '(p50 1.00 ms)')


def test_only_blessed_candidates_compete():
  winner, reason = _select({
      'transformer': _candidate(0.80, 140),
      'rnn_student': _candidate(0.80, 2500, blessed=0),
      'transformer_student': _candidate(0.795, 1800)})
  # The unblessed student is fastest and within the margin, but out.
  assert winner == 'transformer_student'
  assert 'of the 2 within 0.01 macro-F1 of the best (transformer 0.8000) ' \
         'among the blessed' in reason
  assert reason.endswith('rnn_student macro-F1 0.8000, p50 1.00 ms, 2,500 '
                         'headlines/s, 1,000 parameters, not blessed')
  winner, reason = _select({'rnn': _candidate(0.60),
                            'transformer': _candidate(0.80, blessed=0)})
  assert winner == 'rnn'
  assert reason.startswith('rnn: the only blessed candidate (rule ')


def test_when_none_is_blessed_all_compete_and_it_says_so():
  winner, reason = _select({'rnn': _candidate(0.30, blessed=0),
                            'transformer': _candidate(0.20, blessed=0)})
  assert winner == 'rnn'
  assert reason.startswith('rnn: highest macro-F1 (0.3000), no other within '
                           '0.01, though no candidate was blessed (rule ')


def test_a_lone_candidate_wins():
  winner, reason = _select({'transformer': _candidate(0.4, blessed=0)})
  assert winner == 'transformer'
  assert reason.startswith('transformer: the only candidate, though not '
                           'blessed (rule fastest_within_margin); ')
  assert '; vs ' not in reason


@pytest.mark.parametrize('rule, speed', [('fastest', HPS), (FASTEST, 'qps')])
def test_select_refuses_an_unknown_rule_or_speed(rule, speed):
  with pytest.raises(ValueError, match='must be one of'):
    _select({'rnn': _candidate(0.5), 'transformer': _candidate(0.6)},
            rule=rule, speed=speed)


# --- the component ---


def _channels():
  return {'model': types.Channel(type=standard_artifacts.Model),
          'evaluation': types.Channel(type=standard_artifacts.ModelEvaluation),
          'blessing': types.Channel(type=standard_artifacts.ModelBlessing)}


def _component(names, **settings):
  return model_selector.ModelSelector(
      examples=types.Channel(type=standard_artifacts.Examples),
      candidates={name: _channels() for name in names}, **settings)


def test_the_component_takes_a_runs_candidates_and_the_config():
  component = _component(configs.ARCHITECTURES,
                         **dataclasses.asdict(configs.SelectionConfig()))
  assert sorted(component.inputs) == ['examples'] + sorted(
      f'{c}_{kind}' for c in configs.ARCHITECTURES
      for kind in ('blessing', 'evaluation', 'model'))
  assert component.exec_properties['rule'] == FASTEST
  component = _component(('transformer', 'rnn_student',
                          'transformer_student'))
  assert 'transformer_student_model' in component.inputs
  assert 'rnn_model' not in component.inputs
  # Every candidate's input is optional, and may resolve to nothing.
  for key, parameter in model_selector.ModelSelectorSpec.INPUTS.items():
    assert parameter.optional == parameter.allow_empty == (key != 'examples')


@pytest.mark.parametrize('names, settings, message', [
    (('transformer',), {}, 'at least 2 candidates'),
    (('rnn', 'cnn'), {}, 'unknown candidates cnn'),
    (('rnn', 'transformer'), {'rule': 'cheapest'}, 'rule must be one of'),
    (('rnn', 'transformer'), {'speed': 'qps'}, 'speed must be one of'),
    (('rnn', 'transformer'), {'macro_f1_margin': -0.1}, 'at least 0'),
    (('rnn', 'transformer'), {'throughput_batch_size': 0}, 'at least 1'),
])
def test_the_component_refuses(names, settings, message):
  with pytest.raises(ValueError, match=message):
    _component(names, **settings)


def test_the_component_refuses_a_candidate_without_a_blessing():
  candidates = {'rnn': _channels(), 'transformer': _channels()}
  del candidates['transformer']['blessing']
  with pytest.raises(ValueError, match='candidate transformer needs'):
    model_selector.ModelSelector(
        examples=types.Channel(type=standard_artifacts.Examples),
        candidates=candidates)


def test_the_candidates_inputs_compile_to_optional_ones(tmp_path):
  def imported(name, artifact_type):
    return importer.Importer(source_uri=str(tmp_path / name),
                             artifact_type=artifact_type).with_id(name)
  nodes = [imported('examples', standard_artifacts.Examples)]
  candidates = {}
  for candidate in ('rnn', 'transformer'):
    channels = {}
    for kind, artifact_type in model_selector.CANDIDATE_INPUTS.items():
      nodes.append(imported(f'{candidate}_{kind}', artifact_type))
      channels[kind] = nodes[-1].outputs['result']
    candidates[candidate] = channels
  selector = model_selector.ModelSelector(
      examples=nodes[0].outputs['result'], candidates=candidates)
  ir = compiler.Compiler().compile(tfx_pipeline.Pipeline(
      pipeline_name='selector', pipeline_root=str(tmp_path / 'root'),
      components=[*nodes, selector]))
  inputs = {node.pipeline_node.node_info.id: node.pipeline_node.inputs
            for node in ir.nodes}['ModelSelector'].inputs
  assert inputs['examples'].min_count == 1
  assert inputs['rnn_model'].min_count == 0
  assert inputs['transformer_blessing'].min_count == 0


# --- the executor, on real SavedModels ---


@pytest.fixture(scope='module')
def examples(tmp_path_factory):
  return eval_examples_artifact(tmp_path_factory.mktemp('examples'))


def _evaluation(uri, macro_f1, accuracy):
  """A ModelEvaluation with TFMA's metrics file: the overall slice."""
  artifact = _artifact(standard_artifacts.ModelEvaluation, uri)
  metrics = metrics_for_slice_pb2.MetricsForSlice()
  metrics.slice_key.SetInParent()
  for name, value in ((evaluation.MACRO_F1, macro_f1),
                      (evaluation.ACCURACY, accuracy)):
    kv = metrics.metric_keys_and_values.add()
    kv.key.name = name
    kv.key.model_name = evaluation.CANDIDATE
    kv.value.double_value.value = value
  with tf.io.TFRecordWriter(os.path.join(
      uri, 'metrics-00000-of-00001.tfrecord')) as writer:
    writer.write(metrics.SerializeToString())
  return artifact


@pytest.fixture(scope='module')
def model_copies(exported_model, tmp_path_factory):
  """Model artifacts' directories, each holding a copy of the export."""
  export_dir, model, _ = exported_model
  root = tmp_path_factory.mktemp('models')
  for candidate in configs.CANDIDATES:
    shutil.copytree(export_dir, root / candidate / 'Format-Serving')
  return root, model.count_params()


def _inputs(examples, model_copies, tmp_path, figures, empty=()):
  """Executor inputs: {candidate: (macro_f1, blessed)}; `empty`: candidates
  whose channels resolved to no artifact."""
  root, _ = model_copies
  inputs = {'examples': [examples]}
  for candidate, (macro_f1, blessed) in figures.items():
    inputs[f'{candidate}_model'] = [_artifact(standard_artifacts.Model,
                                              root / candidate)]
    inputs[f'{candidate}_evaluation'] = [_evaluation(
        tmp_path / candidate / 'evaluation', macro_f1, macro_f1 + 0.05)]
    inputs[f'{candidate}_blessing'] = [_artifact(
        standard_artifacts.ModelBlessing, tmp_path / candidate / 'blessing',
        blessed=blessed)]
  for candidate in empty:
    for kind in model_selector.CANDIDATE_INPUTS:
      inputs[f'{candidate}_{kind}'] = []
  return inputs


def _run(inputs, tmp_path, **settings):
  output = _artifact(standard_artifacts.Model, tmp_path / 'selected')
  exec_properties = {**dataclasses.asdict(configs.SelectionConfig()),
                     'latency_requests': 10, 'throughput_batch_size': 16,
                     **settings}
  model_selector.Executor().Do(inputs, {'model': [output]}, exec_properties)
  return output


def _check_recorded(output, model_copies, candidates, competing, winner):
  _, parameters = model_copies
  props = output.mlmd_artifact.custom_properties
  assert props['selected_architecture'].string_value == winner
  assert props['selection_reason'].string_value.startswith(f'{winner}: ')
  assert props['candidates'].string_value == ','.join(candidates)
  assert props['competing'].string_value == ','.join(competing)
  assert props['selection_rule'].string_value == (
      'fastest_within_margin, macro_f1_margin 0.01, speed '
      'headlines_per_second')
  for candidate in candidates:
    for name in ('macro_f1', 'accuracy', 'blessed'):
      assert f'{candidate}_{name}' in props
    assert props[f'{candidate}_p50_latency_ms'].double_value > 0
    assert props[f'{candidate}_headlines_per_second'].double_value > 0
    # The SavedModel's float variables: Keras' count, no seed state.
    assert props[f'{candidate}_parameters'].double_value == parameters
  assert os.path.exists(os.path.join(output.uri, 'Format-Serving',
                                     'saved_model.pb'))


def test_the_executor_weighs_two_candidates_a_student_unresolved(
    examples, model_copies, tmp_path):
  # TFX gives an empty list for a channel that resolved to no artifact
  # (transformer_student's Trainer under a false Cond) and leaves out the
  # key of a channel the component was not given (rnn's, in this run).
  output = _run(_inputs(examples, model_copies, tmp_path,
                        {'transformer': (0.80, 1), 'rnn_student': (0.70, 1)},
                        empty=['transformer_student']), tmp_path)
  _check_recorded(output, model_copies, ['transformer', 'rnn_student'],
                  ['transformer', 'rnn_student'], 'transformer')
  assert not any(name.startswith('transformer_student')
                 for name in output.mlmd_artifact.custom_properties)


def test_the_executor_weighs_three_candidates(examples, model_copies,
                                              tmp_path):
  output = _run(_inputs(examples, model_copies, tmp_path, {
      'transformer': (0.80, 1), 'rnn_student': (0.85, 0),
      'transformer_student': (0.75, 1)}), tmp_path)
  _check_recorded(output, model_copies,
                  ['transformer', 'rnn_student', 'transformer_student'],
                  ['transformer', 'transformer_student'], 'transformer')
  reason = output.get_string_custom_property('selection_reason')
  assert reason.startswith('transformer: highest macro-F1 (0.8000), no other '
                           'within 0.01 among the blessed (rule ')
  assert '; vs rnn_student macro-F1 0.8500, p50 ' in reason
  assert reason.count('not blessed') == 1


def test_the_executor_refuses_a_candidate_missing_an_input(examples,
                                                          model_copies,
                                                          tmp_path):
  inputs = _inputs(examples, model_copies, tmp_path,
                   {'transformer': (0.8, 1), 'rnn_student': (0.7, 1)})
  inputs['rnn_student_evaluation'] = []
  with pytest.raises(ValueError, match='candidate rnn_student has its model, '
                     'blessing but no evaluation'):
    _run(inputs, tmp_path)
  with pytest.raises(ValueError, match='no candidate resolved'):
    _run(_inputs(examples, model_copies, tmp_path, {},
                 empty=['transformer', 'rnn_student']), tmp_path)
