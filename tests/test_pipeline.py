"""pipeline.create_pipeline compiled by TFX's compiler: the wiring of the gates."""

import pytest
from tfx.dsl.compiler import compiler

from finsent import configs
from finsent.pipeline import pipeline as pipeline_lib


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
    ('rnn', 'Trainer.rnn'), ('transformer', 'Trainer.transformer'),
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
    ('rnn', 'Trainer.rnn'), ('transformer', 'Trainer.transformer'),
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
