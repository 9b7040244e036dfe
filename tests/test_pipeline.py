"""pipeline.create_pipeline compiled by TFX's compiler: the wiring of the gates."""

import json

from google.protobuf import json_format
import pytest
import tensorflow_model_analysis as tfma
from tfx.dsl.compiler import compiler

from finsent import configs
from finsent.models import evaluation
from finsent.pipeline import pipeline as pipeline_lib


# The default run's candidates: the fine-tuned encoder and its students.
CANDIDATES = configs.PipelineConfig().candidates


def _compiled(tmp_path, **overrides):
  config = configs.PipelineConfig(output_dir=str(tmp_path), **overrides)
  ir = compiler.Compiler().compile(pipeline_lib.create_pipeline(config))
  return {node.pipeline_node.node_info.id: node.pipeline_node
          for node in ir.nodes}


def _input_producers(node, key):
  """(producer node id, output key) of each channel of an input."""
  return [(channel.producer_node_query.id, channel.output_key)
          for channel in node.inputs.inputs[key].channels]


@pytest.mark.parametrize('check_drift', [True, False])
def test_nothing_downstream_of_the_data_runs_before_the_gate(tmp_path,
                                                             check_drift):
  nodes = _compiled(tmp_path, check_drift=check_drift)
  assert pipeline_lib.DATA_GATE in nodes['Transform'].upstream_nodes
  gate_inputs = set(nodes[pipeline_lib.DATA_GATE].inputs.inputs)
  assert ('drift_anomalies' in gate_inputs) == check_drift
  assert ('DistributionValidator' in nodes) == check_drift


def _queried_nodes(resolver):
  """The node context each of a resolver's channels queries, by output key.

  TFX compiles a resolver's inputs to hidden keys (`_<node>.<output>`); the
  node context query says whose outputs it resolves from.
  """
  return {channel.output_key: [q.name.field_value.string_value
                               for q in channel.context_queries
                               if q.type.name == 'node']
          for spec in resolver.inputs.inputs.values()
          for channel in spec.channels}


def test_drift_baseline_is_the_last_accepted_statistics(tmp_path):
  resolver = _compiled(tmp_path)[pipeline_lib.BASELINE_STATISTICS_RESOLVER]
  assert _queried_nodes(resolver) == {'validated_statistics': [
      f'{configs.PIPELINE_NAME}.{pipeline_lib.DATA_GATE}']}


@pytest.mark.parametrize('name,producer', [
    *((c, f'Trainer.{c}') for c in CANDIDATES),
    (pipeline_lib.PRODUCTION, 'ModelSelector')])
def test_each_gate_compares_with_what_it_blessed_itself(tmp_path, name,
                                                        producer):
  resolver = _compiled(tmp_path)[
      f'{pipeline_lib.BLESSED_MODEL_RESOLVER}.{name}']
  assert _queried_nodes(resolver) == {
      'model': [f'{configs.PIPELINE_NAME}.{producer}'],
      'blessing': [f'{configs.PIPELINE_NAME}.Evaluator.{name}'],
  }


def test_only_the_production_gate_feeds_the_production_push(tmp_path):
  nodes = _compiled(tmp_path)
  pusher = nodes[pipeline_lib.PRODUCTION_PUSHER]
  assert _input_producers(pusher, 'model') == [('ModelSelector', 'model')]
  assert _input_producers(pusher, 'model_blessing') == [
      (pipeline_lib.PRODUCTION_EVALUATOR, 'blessing')]
  push_destination = pusher.parameters.parameters['push_destination']
  assert (f'/serving_model/{configs.PRODUCTION_MODEL_NAME}"'
          in push_destination.field_value.string_value)


@pytest.mark.parametrize('name,producer', [
    *((c, f'Trainer.{c}') for c in CANDIDATES),
    (pipeline_lib.PRODUCTION, 'ModelSelector')])
def test_each_push_needs_the_model_shown_servable(tmp_path, name, producer):
  nodes = _compiled(tmp_path)
  gate_id = f'{pipeline_lib.SERVABILITY_GATE}.{name}'
  gate = nodes[gate_id]
  assert gate.node_info.type.name.endswith('ServingValidator')
  assert _input_producers(gate, 'model') == [(producer, 'model')]
  assert _input_producers(gate, 'model_blessing') == [
      (f'Evaluator.{name}', 'blessing')]
  pusher = nodes[f'Pusher.{name}']
  assert _input_producers(pusher, 'infra_blessing') == [(gate_id, 'blessing')]
  assert _input_producers(pusher, 'model') == [(producer, 'model')]


def test_kubeflow_servability_gate_is_infra_validator_on_tf_serving(tmp_path):
  serving = configs.ServingConfig(validation='kubernetes')
  nodes = _compiled(tmp_path, serving=serving)
  gate = nodes[f'{pipeline_lib.SERVABILITY_GATE}.{pipeline_lib.PRODUCTION}']
  assert gate.node_info.type.name == 'tfx.components.infra_validator.component.InfraValidator'
  spec = gate.parameters.parameters['serving_spec'].field_value.string_value
  image, tag = serving.image.rsplit(':', 1)
  assert f'"image_name": "{image}"' in spec and f'"{tag}"' in spec
  assert '"kubernetes"' in spec


SECOND_SOURCE_NODES = sorted(
    [pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN] +
    [f'{pipeline_lib.SECOND_SOURCE_EVALUATOR}.{a}'
     for a in CANDIDATES])


def _parameter(node, name):
  return node.parameters.parameters[name].field_value.string_value


@pytest.fixture(scope='module')
def second_source_dag(tmp_path_factory):
  """(nodes with a second source, nodes without) of the same config."""
  root = tmp_path_factory.mktemp('second_source')
  other = root / 'other.csv'
  other.write_text('text,label\nOrders jump to a record,positive\n')
  return (_compiled(root / 'with', second_source=str(other)),
          _compiled(root / 'without'), root)


def test_without_a_second_source_the_dag_has_none_of_its_nodes(
    second_source_dag):
  _, without, _ = second_source_dag
  assert not [n for n in without if pipeline_lib.SECOND_SOURCE in n]


def test_a_second_source_adds_its_example_gen_and_an_evaluator_per_trainer(
    second_source_dag):
  nodes, without, root = second_source_dag
  assert sorted(set(nodes) - set(without)) == SECOND_SOURCE_NODES
  # The rest of the DAG is unchanged: the same inputs from the same nodes.
  for node_id, node in without.items():
    assert nodes[node_id].inputs == node.inputs, node_id
    assert set(nodes[node_id].downstream_nodes) - set(
        SECOND_SOURCE_NODES) == set(node.downstream_nodes), node_id
  example_gen = nodes[pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN]
  assert _parameter(example_gen, 'input_base') == str(root)
  assert json.loads(_parameter(example_gen, 'input_config')) == {'splits': [
      {'name': pipeline_lib.SECOND_SOURCE, 'pattern': 'other.csv'}]}
  # No split_config: the one input split is the output, not hash-split.
  assert json.loads(_parameter(example_gen, 'output_config')) == {}
  # It starts after every push, so it can neither delay nor stop one.
  assert set(example_gen.upstream_nodes) == {
      f'Pusher.{name}'
      for name in CANDIDATES + (pipeline_lib.PRODUCTION,)}
  for architecture in CANDIDATES:
    evaluator = nodes[f'{pipeline_lib.SECOND_SOURCE_EVALUATOR}.'
                      f'{architecture}']
    assert _input_producers(evaluator, 'model') == [
        (f'Trainer.{architecture}', 'model')]
    assert _input_producers(evaluator, 'examples') == [
        (pipeline_lib.SECOND_SOURCE_EXAMPLE_GEN, 'examples')]
    assert 'baseline_model' not in evaluator.inputs.inputs
    assert json.loads(_parameter(evaluator, 'example_splits')) == [
        pipeline_lib.SECOND_SOURCE]
    # Nothing downstream: no gate, resolver or Pusher reads its outputs.
    assert not evaluator.downstream_nodes


def test_the_second_source_is_measured_like_the_gates_but_never_validated(
    second_source_dag):
  nodes, _, _ = second_source_dag
  for architecture in CANDIDATES:
    eval_config = json_format.Parse(
        _parameter(nodes[f'{pipeline_lib.SECOND_SOURCE_EVALUATOR}.'
                         f'{architecture}'], 'eval_config'),
        tfma.EvalConfig())
    # TFX's Evaluator validates, and so blesses, only when the config has
    # thresholds (Executor: run_validation).
    assert not tfma.metrics.metric_thresholds_from_metrics_specs(
        eval_config.metrics_specs, eval_config=eval_config)
    gate = evaluation.create_eval_config(0.5, 0.5)
    assert eval_config.model_specs == gate.model_specs  # serving_examples
    assert eval_config.slicing_specs == gate.slicing_specs
    assert ([m.class_name for m in eval_config.metrics_specs[0].metrics] ==
            [m.class_name for m in gate.metrics_specs[0].metrics])


def test_a_second_source_changes_no_gates_baseline(second_source_dag):
  nodes, _, _ = second_source_dag
  for name in CANDIDATES + (pipeline_lib.PRODUCTION,):
    resolver = nodes[f'{pipeline_lib.BLESSED_MODEL_RESOLVER}.{name}']
    assert _queried_nodes(resolver)['blessing'] == [
        f'{configs.PIPELINE_NAME}.Evaluator.{name}'], name


STUDENTS = ('rnn_student', 'transformer_student')


def test_the_default_run_distils_the_encoder_into_two_students(tmp_path):
  assert CANDIDATES == ('transformer',) + STUDENTS
  nodes = _compiled(tmp_path)
  assert 'Trainer.rnn' not in nodes  # the RNN learns from the teacher only
  inferrer = nodes[pipeline_lib.BULK_INFERRER]
  assert _input_producers(inferrer, 'model') == [
      ('Trainer.transformer', 'model')]
  assert _input_producers(inferrer, 'model_blessing') == [
      ('Evaluator.transformer', 'blessing')]
  assert _input_producers(inferrer, 'examples') == [
      ('TextExampleGen', 'examples')]
  assert json.loads(_parameter(inferrer, 'data_spec')) == {
      'example_splits': ['train', 'eval']}
  # A float-only signature: tfx_bsl's Predict handler fails on a string
  # output.
  assert json.loads(_parameter(inferrer, 'model_spec')) == {
      'model_signature_name': ['bulk_inference']}
  assert json.loads(_parameter(inferrer, 'output_example_spec')) == {
      'output_columns_spec': [{'predict_output': {'output_columns': [{
          'output_key': 'probabilities',
          'output_column': configs.TEACHER_PROBABILITIES_KEY}]}}]}
  for student in STUDENTS:
    trainer = nodes[f'Trainer.{student}']
    assert _input_producers(trainer, 'examples') == [
        (pipeline_lib.BULK_INFERRER, 'output_examples')]
    assert _input_producers(trainer, 'transform_graph') == [
        ('Transform', 'transform_graph')]
    custom_config = json.loads(_parameter(trainer, 'custom_config'))
    assert custom_config['candidate'] == student
    assert custom_config['pretrained_encoder'] is None
    assert custom_config['distillation']['teacher_probabilities_key'] == (
        configs.TEACHER_PROBABILITIES_KEY)
    assert json.loads(_parameter(trainer, 'train_args')) == {
        'splits': ['train']}
    assert json.loads(_parameter(trainer, 'eval_args')) == {
        'splits': ['eval']}
    # Gated like the teacher, on the labelled examples.
    assert _input_producers(nodes[f'Evaluator.{student}'], 'examples') == [
        ('TextExampleGen', 'examples')]
  selector = nodes['ModelSelector']
  for candidate in CANDIDATES:
    assert _input_producers(selector, f'{candidate}_model') == [
        (f'Trainer.{candidate}', 'model')]


def test_the_students_wait_for_the_teachers_blessing(tmp_path):
  """BulkInferrer on an unblessed model succeeds with an empty output, on
  which the students would fail: a Cond skips them instead."""
  nodes = _compiled(tmp_path)
  guarded = [pipeline_lib.BULK_INFERRER] + [
      f'{kind}.{student}' for student in STUDENTS
      for kind in ('Trainer', 'Evaluator', 'Pusher')]
  for node_id in guarded:
    conditionals = nodes[node_id].inputs.conditionals
    assert len(conditionals) == 1, node_id
    predicate = json_format.MessageToDict(
        next(iter(conditionals.values())).placeholder_expression)
    assert 'blessed' in json.dumps(predicate), node_id
  for node_id in ('Trainer.transformer', 'Evaluator.transformer',
                  'ModelSelector'):
    assert not nodes[node_id].inputs.conditionals, node_id


def test_unlabelled_texts_reach_the_students_through_bulk_inferrer(tmp_path):
  texts = tmp_path / 'headlines.csv'
  texts.write_text('text\nOrders jump to a record\n')
  nodes = _compiled(tmp_path, unlabelled=str(texts))
  example_gen = nodes[pipeline_lib.UNLABELLED_EXAMPLE_GEN]
  assert json.loads(_parameter(example_gen, 'input_config')) == {'splits': [
      {'name': configs.UNLABELLED_SPLIT, 'pattern': 'headlines.csv'}]}
  merge = nodes['MergeExamples']
  assert _input_producers(merge, 'examples') == [
      ('TextExampleGen', 'examples')]
  assert _input_producers(merge, 'other_examples') == [
      (pipeline_lib.UNLABELLED_EXAMPLE_GEN, 'examples')]
  inferrer = nodes[pipeline_lib.BULK_INFERRER]
  assert _input_producers(inferrer, 'examples') == [
      ('MergeExamples', 'merged_examples')]
  assert json.loads(_parameter(inferrer, 'data_spec')) == {
      'example_splits': ['train', 'eval', configs.UNLABELLED_SPLIT]}
  for student in STUDENTS:
    assert json.loads(_parameter(nodes[f'Trainer.{student}'],
                                 'train_args')) == {
        'splits': ['train', configs.UNLABELLED_SPLIT]}


@pytest.mark.parametrize('overrides', [
    {'distillation': configs.DistillationConfig(enabled=False)},
    {'preprocessing': configs.PreprocessingConfig(pretrained_encoder=None)}])
def test_without_students_each_architecture_learns_from_the_labels(
    tmp_path, overrides):
  config = configs.PipelineConfig(**overrides)
  assert config.candidates == configs.ARCHITECTURES
  nodes = _compiled(tmp_path, **overrides)
  assert pipeline_lib.BULK_INFERRER not in nodes
  assert not [n for n in nodes if 'student' in n]
  for architecture in configs.ARCHITECTURES:
    assert _input_producers(nodes[f'Trainer.{architecture}'], 'examples') == [
        ('Transform', 'transformed_examples')]


def test_topic_data_joins_the_labelled_data_and_every_gate_reads_both_heads(
    tmp_path):
  topics = tmp_path / 'topics'
  topics.mkdir()
  for name in ('topic_train.csv', 'topic_valid.csv'):
    (topics / name).write_text('text,label\n"Fed holds rates",1\n')
  overrides = dict(
      topic_data=str(topics),
      distillation=configs.DistillationConfig(enabled=False))
  nodes = _compiled(tmp_path, **overrides)
  example_gen = nodes[pipeline_lib.TOPIC_EXAMPLE_GEN]
  assert _parameter(example_gen, 'input_base') == str(topics)
  assert json.loads(_parameter(example_gen, 'input_config')) == {'splits': [
      {'name': 'train', 'pattern': 'topic_train.csv'},
      {'name': 'eval', 'pattern': 'topic_valid.csv'}]}
  merge = nodes[pipeline_lib.TOPIC_MERGE]
  assert _input_producers(merge, 'examples') == [
      ('TextExampleGen', 'examples')]
  assert _input_producers(merge, 'other_examples') == [
      (pipeline_lib.TOPIC_EXAMPLE_GEN, 'examples')]
  assert merge.parameters.parameters[
      'join_same_splits'].field_value.int_value == 1
  # Everything that read the labelled examples reads the joined ones.
  joined = [(pipeline_lib.TOPIC_MERGE, 'merged_examples')]
  for node_id in ('StatisticsGen', 'Transform', 'ModelSelector',
                  *(f'{kind}.{name}' for kind in ('Evaluator',
                                                  'ServingValidator')
                    for name in (*configs.ARCHITECTURES,
                                 pipeline_lib.PRODUCTION))):
    assert _input_producers(nodes[node_id], 'examples') == joined, node_id
  # Topic records have no sentiment label: the gate lets them through.
  assert nodes[pipeline_lib.DATA_GATE].parameters.parameters[
      'every_record_labelled'].field_value.int_value == 0
  for architecture in configs.ARCHITECTURES:
    custom_config = json.loads(_parameter(nodes[f'Trainer.{architecture}'],
                                          'custom_config'))
    assert custom_config['num_topics'] == len(configs.TOPICS)
    # A model per head by default (models.trainer.trained_heads).
    assert custom_config['topic_model'] == 'separate'
  joint = _compiled(tmp_path, topic_model='joint', **overrides)
  for architecture in configs.ARCHITECTURES:
    assert json.loads(_parameter(joint[f'Trainer.{architecture}'],
                                 'custom_config'))['topic_model'] == 'joint'
  # Each gate measures, and blesses on, both outputs.
  expected = pipeline_lib.create_gate_eval_config(
      configs.PipelineConfig(output_dir=str(tmp_path), **overrides))
  assert [s.output_names for s in expected.metrics_specs] == [
      ['probabilities'], ['topic_probabilities']]
  for name in (*configs.ARCHITECTURES, pipeline_lib.PRODUCTION):
    assert json_format.Parse(
        _parameter(nodes[f'Evaluator.{name}'], 'eval_config'),
        tfma.EvalConfig()) == expected, name


def test_with_topic_data_the_students_learn_the_teachers_topics(tmp_path):
  topics = tmp_path / 'topics'
  topics.mkdir()
  (topics / 'topic.csv').write_text('text,label\n"Fed holds rates",1\n')
  nodes = _compiled(tmp_path, topic_data=str(topics / 'topic.csv'))
  inferrer = nodes[pipeline_lib.BULK_INFERRER]
  assert _input_producers(inferrer, 'examples') == [
      (pipeline_lib.TOPIC_MERGE, 'merged_examples')]
  assert json.loads(_parameter(inferrer, 'output_example_spec')) == {
      'output_columns_spec': [{'predict_output': {'output_columns': [
          {'output_key': 'probabilities',
           'output_column': configs.TEACHER_PROBABILITIES_KEY},
          {'output_key': 'topic_probabilities',
           'output_column': configs.TEACHER_TOPIC_PROBABILITIES_KEY}]}}]}
  for candidate in CANDIDATES:
    custom_config = json.loads(_parameter(nodes[f'Trainer.{candidate}'],
                                          'custom_config'))
    assert custom_config['num_topics'] == len(configs.TOPICS), candidate
    # In the Trainer's cache key: no model cached with other signatures.
    assert custom_config['export_signatures_version'] == (
        configs.EXPORT_SIGNATURES_VERSION)
  for student in STUDENTS:
    custom_config = json.loads(_parameter(nodes[f'Trainer.{student}'],
                                          'custom_config'))
    assert custom_config['distillation'][
        'teacher_topic_probabilities_key'] == (
            configs.TEACHER_TOPIC_PROBABILITIES_KEY)
    # Gated on both outputs, on the joined labelled examples.
    assert _input_producers(nodes[f'Evaluator.{student}'], 'examples') == [
        (pipeline_lib.TOPIC_MERGE, 'merged_examples')]


def test_without_topic_data_every_record_needs_a_label(tmp_path):
  nodes = _compiled(tmp_path)
  assert pipeline_lib.TOPIC_EXAMPLE_GEN not in nodes
  assert nodes[pipeline_lib.DATA_GATE].parameters.parameters[
      'every_record_labelled'].field_value.int_value == 1
  custom_config = json.loads(_parameter(nodes['Trainer.transformer'],
                                        'custom_config'))
  assert custom_config['num_topics'] == 0
