"""create_pipeline: the finsent TFX DAG, from data to pushed models.

  TextExampleGen -> StatisticsGen -> ExampleValidator (curated schema from
  ImportSchemaGen) + DistributionValidator (drift from the last accepted
  data) -> DataGate -> Transform
  -> per architecture (RNN, Transformer): Trainer -> Evaluator -> Pusher
  -> ModelSelector -> Evaluator.production (vs the latest blessed
  production model) -> Pusher.production (`sentiment`).
"""

import dataclasses
import os
from typing import List, Tuple

from tfx import v1 as tfx
from tfx.components.distribution_validator.component import (
    DistributionValidator)
from tfx.dsl.components.base import base_node
from tfx.proto import distribution_validator_pb2

from components.atomic_pusher import AtomicPusher
from components.data_gate import DataGate
from components.model_selector import ModelSelector
from components.text_example_gen import TextExampleGen
from data import loaders
from models import evaluation
from pipeline import configs

DATA_GATE = 'DataGate'
BASELINE_STATISTICS_RESOLVER = 'latest_validated_statistics_resolver'
PRODUCTION_EVALUATOR = 'Evaluator.production'
PRODUCTION_PUSHER = 'Pusher.production'


def create_input_configs(config: configs.PipelineConfig):
  """ExampleGen input base and split configs for `config.data`."""
  layout = loaders.resolve_input(config.data)
  input_config = tfx.proto.Input(splits=[
      tfx.proto.Input.Split(name=name, pattern=pattern)
      for name, pattern in layout.splits.items()])
  output_config = None
  if list(layout.splits) == ['all']:
    train, eval_ = config.split_hash_buckets
    output_config = tfx.proto.Output(split_config=tfx.proto.SplitConfig(
        splits=[tfx.proto.SplitConfig.Split(name='train', hash_buckets=train),
                tfx.proto.SplitConfig.Split(name='eval', hash_buckets=eval_)]))
  return layout.input_base, input_config, output_config


def create_data_gate(config: configs.PipelineConfig,
                     examples: tfx.types.BaseChannel,
                     schema: tfx.types.BaseChannel
                     ) -> Tuple[List[base_node.BaseNode], base_node.BaseNode]:
  """Statistics, schema and drift checks, and the gate after them.

  Returns the nodes (the gate last) and the gate, which whatever must not
  run on bad data depends on.
  """
  statistics_gen = tfx.components.StatisticsGen(examples=examples)
  example_validator = tfx.components.ExampleValidator(
      statistics=statistics_gen.outputs['statistics'], schema=schema)
  nodes = [statistics_gen, example_validator]
  drift_anomalies = None
  if config.check_drift:
    baseline = tfx.dsl.Resolver(
        strategy_class=tfx.dsl.experimental.LatestArtifactStrategy,
        statistics=tfx.dsl.Channel(
            type=tfx.types.standard_artifacts.ExampleStatistics,
            producer_component_id=DATA_GATE,
            output_key='validated_statistics'),
    ).with_id(BASELINE_STATISTICS_RESOLVER)
    drift_validator = DistributionValidator(
        statistics=statistics_gen.outputs['statistics'],
        # Optional: the first run has no accepted data to compare with (the
        # validator then passes it, recording that there was no baseline).
        baseline_statistics=baseline.outputs['statistics'].as_optional(),
        config=create_drift_config(config.drift))
    drift_anomalies = drift_validator.outputs['anomalies']
    nodes += [baseline, drift_validator]
  data_gate = DataGate(
      schema_anomalies=example_validator.outputs['anomalies'],
      drift_anomalies=drift_anomalies,
      statistics=statistics_gen.outputs['statistics']).with_id(DATA_GATE)
  return nodes + [data_gate], data_gate


def create_drift_config(
    thresholds: configs.DriftThresholds
) -> distribution_validator_pb2.DistributionValidatorConfig:
  """L-infinity limits per feature, compared split by split."""
  config = distribution_validator_pb2.DistributionValidatorConfig()
  for feature, limit in dataclasses.asdict(thresholds).items():
    comparator = config.default_slice_config.feature.add()
    comparator.path.step.append(feature)
    comparator.distribution_comparator.infinity_norm.threshold = limit
  return config


def _push_destination(base_directory: str) -> tfx.proto.PushDestination:
  return tfx.proto.PushDestination(
      filesystem=tfx.proto.PushDestination.Filesystem(
          base_directory=base_directory))


def create_pipeline(config: configs.PipelineConfig) -> tfx.dsl.Pipeline:
  """The finsent pipeline for `config`."""
  input_base, input_config, output_config = create_input_configs(config)
  example_gen = TextExampleGen(input_base=input_base,
                               input_config=input_config,
                               output_config=output_config)
  schema_gen = tfx.components.ImportSchemaGen(schema_file=configs.SCHEMA_FILE)
  schema = schema_gen.outputs['schema']
  data_gate_nodes, data_gate = create_data_gate(
      config, example_gen.outputs['examples'], schema)
  transform = tfx.components.Transform(
      examples=example_gen.outputs['examples'],
      schema=schema,
      preprocessing_fn=configs.PREPROCESSING_FN,
      custom_config=dataclasses.asdict(config.preprocessing))
  # Nothing is transformed, trained or pushed unless the data passed.
  transform.add_upstream_node(data_gate)
  components = [example_gen, schema_gen, *data_gate_nodes, transform]

  thresholds = config.thresholds
  eval_config = evaluation.create_eval_config(thresholds.min_accuracy,
                                              thresholds.min_macro_f1)
  candidates = {}
  for architecture in configs.ARCHITECTURES:
    trainer = tfx.components.Trainer(
        run_fn=configs.RUN_FN,
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema,
        train_args=tfx.proto.TrainArgs(
            num_steps=config.training.train_steps or 0),
        custom_config=config.trainer_custom_config(architecture),
    ).with_id(f'Trainer.{architecture}')
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs['examples'],
        model=trainer.outputs['model'],
        eval_config=eval_config,
    ).with_id(f'Evaluator.{architecture}')
    pusher = AtomicPusher(
        model=trainer.outputs['model'],
        model_blessing=evaluator.outputs['blessing'],
        push_destination=_push_destination(os.path.join(
            config.serving_root, config.serving_model_name(architecture))),
    ).with_id(f'Pusher.{architecture}')
    components += [trainer, evaluator, pusher]
    candidates[architecture] = {'model': trainer.outputs['model'],
                                'evaluation': evaluator.outputs['evaluation'],
                                'blessing': evaluator.outputs['blessing']}

  model_selector = ModelSelector(
      examples=example_gen.outputs['examples'], candidates=candidates,
      **dataclasses.asdict(config.selection))
  # The production baseline: the latest selected model the production
  # Evaluator blessed (not the architectures' own blessings).
  baseline_model = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                            producer_component_id='ModelSelector',
                            output_key='model'),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing,
          producer_component_id=PRODUCTION_EVALUATOR, output_key='blessing'),
  ).with_id('latest_blessed_model_resolver')
  production_evaluator = tfx.components.Evaluator(
      examples=example_gen.outputs['examples'],
      model=model_selector.outputs['model'],
      baseline_model=baseline_model.outputs['model'],
      eval_config=evaluation.create_eval_config(
          thresholds.min_accuracy, thresholds.min_macro_f1,
          max_drop=thresholds.max_drop_from_baseline),
  ).with_id(PRODUCTION_EVALUATOR)
  production_pusher = AtomicPusher(
      model=model_selector.outputs['model'],
      model_blessing=production_evaluator.outputs['blessing'],
      push_destination=_push_destination(os.path.join(
          config.serving_root, configs.PRODUCTION_MODEL_NAME)),
  ).with_id(PRODUCTION_PUSHER)
  components += [model_selector, baseline_model, production_evaluator,
                 production_pusher]

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      metadata_connection_config=(
          tfx.orchestration.metadata.sqlite_metadata_connection_config(
              config.metadata_path)),
      beam_pipeline_args=list(config.beam_pipeline_args))
