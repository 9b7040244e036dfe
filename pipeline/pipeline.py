"""create_pipeline: the finsent TFX DAG, from data to pushed models.

  TextExampleGen -> StatisticsGen -> ExampleValidator (curated schema from
  ImportSchemaGen) + DistributionValidator (drift from the last accepted
  data) -> DataGate -> Transform
  -> per architecture (RNN, Transformer): Trainer -> Evaluator ->
     ServingValidator -> Pusher
  -> ModelSelector -> Evaluator.production -> ServingValidator.production
     -> Pusher.production (`sentiment`).
Each Evaluator compares its model with the latest one it blessed before;
each ServingValidator serves the blessed candidate before its Pusher may
push it (TFX's InfraValidator instead, on Kubernetes).

With `second_source`, after every Pusher: TextExampleGen.second_source
-> per architecture Evaluator.second_source.<architecture>, which scores
that architecture's Trainer model on data it was never trained on; no
thresholds, and nothing reads its outputs but the run summary.
"""

import dataclasses
import os
import posixpath
from typing import Dict, List, Optional, Tuple

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx.components.distribution_validator.component import (
    DistributionValidator)
from tfx.dsl.components.base import base_node
from tfx.proto import distribution_validator_pb2

from finsent.components.atomic_pusher import AtomicPusher
from finsent.components.data_gate import DataGate
from finsent.components.model_selector import ModelSelector
from finsent.components.serving_validator import ServingValidator
from finsent.components.text_example_gen import TextExampleGen
from finsent.data import loaders
from finsent.models import evaluation
from finsent.models.export import EXAMPLES_SIGNATURE
from finsent import configs

DATA_GATE = 'DataGate'
BASELINE_STATISTICS_RESOLVER = 'latest_validated_statistics_resolver'
BLESSED_MODEL_RESOLVER = 'latest_blessed_model_resolver'
SERVABILITY_GATE = 'ServingValidator'
PRODUCTION = 'production'
PRODUCTION_EVALUATOR = f'Evaluator.{PRODUCTION}'
PRODUCTION_PUSHER = f'Pusher.{PRODUCTION}'
# The second source: its ExampleGen, its one split, and its Evaluators'
# id prefix (`Evaluator.second_source.<architecture>`).
SECOND_SOURCE = 'second_source'
SECOND_SOURCE_EXAMPLE_GEN = f'TextExampleGen.{SECOND_SOURCE}'
SECOND_SOURCE_EVALUATOR = f'Evaluator.{SECOND_SOURCE}'


def create_input_configs(config: configs.PipelineConfig):
  """ExampleGen input base and split configs for `config.data`: the
  layout of `config.data_splits`, else the one its files show."""
  layout = (loaders.InputLayout(config.data, dict(config.data_splits))
            if config.data_splits else loaders.resolve_input(config.data))
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


def create_example_gen(
    config: configs.PipelineConfig,
    data_root: Optional[tfx.dsl.experimental.RuntimeParameter] = None
) -> base_node.BaseNode:
  """TextExampleGen over `config.data`, or over the folder `data_root`
  names when given (a runtime parameter on Kubeflow)."""
  input_base, input_config, output_config = create_input_configs(config)
  return TextExampleGen(
      input_base=input_base if data_root is None else data_root,
      input_config=input_config, output_config=output_config)


def second_source_layout(path: str) -> loaders.InputLayout:
  """Where TextExampleGen.second_source reads `path`: one split, named
  SECOND_SOURCE, scored whole (never hash-split).

  A local file, or a folder of files of one type (loaders.resolve_input). A
  folder laid out as a train file and an eval file is refused: which of
  them is data the models never saw is for the user to say. In object
  storage (a compiled pipeline's gs:// path) it must name one file, since
  nothing lists the bucket before the run. Raises loaders.DataFormatError.
  """
  if configs.is_uri(path):
    name = posixpath.basename(path)
    if os.path.splitext(name)[1].lower() not in loaders.EXTENSIONS:
      raise loaders.DataFormatError(
          path, None, 'a second source in object storage must be one file '
          f'({", ".join(loaders.EXTENSIONS)})')
    return loaders.InputLayout(posixpath.dirname(path), {SECOND_SOURCE: name})
  layout = loaders.resolve_input(path)
  if list(layout.splits) != ['all']:
    raise loaders.DataFormatError(
        layout.input_base, None, 'a second source is scored as one split, '
        'but this folder is laid out as ' + ' and '.join(
            f'{split} ({pattern})' for split, pattern in layout.splits.items())
        + ': name the one file to score')
  return loaders.InputLayout(layout.input_base,
                             {SECOND_SOURCE: layout.splits['all']})


def create_unthresholded_eval_config() -> tfma.EvalConfig:
  """The gates' EvalConfig (same signatures, metrics and slices) without a
  baseline or any threshold: TFX's Evaluator then validates nothing and its
  blessing never carries `blessed`, so no Pusher or resolver can take it.
  """
  return evaluation.create_eval_config(min_accuracy=None, min_macro_f1=None)


def create_second_source(config: configs.PipelineConfig,
                         models: Dict[str, tfx.types.BaseChannel],
                         after: List[base_node.BaseNode]
                         ) -> List[base_node.BaseNode]:
  """TextExampleGen.second_source over `config.second_source`, and an
  Evaluator.second_source.<name> scoring each of `models` on it.

  They start after the nodes `after` (every Pusher): nothing of the
  pipeline's waits for them, and a second source that cannot be read (a
  gs:// file gone on a cluster) fails after the pushes, not before.
  The Evaluators read raw examples through each model's serving_examples
  signature, as the gates' do, but with no baseline and no thresholds.
  """
  layout = second_source_layout(config.second_source)
  example_gen = TextExampleGen(
      input_base=layout.input_base,
      input_config=tfx.proto.Input(splits=[
          tfx.proto.Input.Split(name=name, pattern=pattern)
          for name, pattern in layout.splits.items()]),
      # No split_config: the one input split is the output. Without an
      # output_config FileBasedExampleGen would hash a single input split
      # 2:1 into train and eval.
      output_config=tfx.proto.Output()).with_id(SECOND_SOURCE_EXAMPLE_GEN)
  for node in after:
    example_gen.add_upstream_node(node)
  eval_config = create_unthresholded_eval_config()
  return [example_gen] + [
      tfx.components.Evaluator(
          examples=example_gen.outputs['examples'], model=model,
          eval_config=eval_config, example_splits=[SECOND_SOURCE],
      ).with_id(f'{SECOND_SOURCE_EVALUATOR}.{name}')
      for name, model in models.items()]


def create_transform(config: configs.PipelineConfig,
                     examples: tfx.types.BaseChannel,
                     schema: tfx.types.BaseChannel) -> base_node.BaseNode:
  """Transform with the project's preprocessing_fn and its settings."""
  return tfx.components.Transform(
      examples=examples, schema=schema,
      preprocessing_fn=configs.PREPROCESSING_FN,
      custom_config=dataclasses.asdict(config.preprocessing))


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


def create_model_gate(name: str, examples: tfx.types.BaseChannel,
                      producer: base_node.BaseNode,
                      eval_config: tfma.EvalConfig, push_base_directory: str,
                      serving: configs.ServingConfig
                      ) -> List[base_node.BaseNode]:
  """Resolver, Evaluator, servability gate and Pusher for one served model,
  ids `<kind>.<name>`.

  The baseline is the latest model of `producer` that this same Evaluator
  blessed, so each served name is compared only with its own past; the
  first time there is none and the value thresholds alone decide. The
  Pusher takes only a model both blessed and shown servable.
  """
  evaluator_id = f'Evaluator.{name}'
  baseline = tfx.dsl.Resolver(
      strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
      model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model,
                            producer_component_id=producer.id,
                            output_key='model'),
      model_blessing=tfx.dsl.Channel(
          type=tfx.types.standard_artifacts.ModelBlessing,
          producer_component_id=evaluator_id, output_key='blessing'),
  ).with_id(f'{BLESSED_MODEL_RESOLVER}.{name}')
  evaluator = tfx.components.Evaluator(
      examples=examples,
      model=producer.outputs['model'],
      baseline_model=baseline.outputs['model'],
      eval_config=eval_config,
  ).with_id(evaluator_id)
  servability = create_servability_gate(
      serving, producer.outputs['model'], examples,
      evaluator.outputs['blessing']).with_id(f'{SERVABILITY_GATE}.{name}')
  pusher = AtomicPusher(
      model=producer.outputs['model'],
      model_blessing=evaluator.outputs['blessing'],
      infra_blessing=servability.outputs['blessing'],
      push_destination=tfx.proto.PushDestination(
          filesystem=tfx.proto.PushDestination.Filesystem(
              base_directory=push_base_directory)),
  ).with_id(f'Pusher.{name}')
  return [baseline, evaluator, servability, pusher]


def create_servability_gate(serving: configs.ServingConfig,
                            model: tfx.types.BaseChannel,
                            examples: tfx.types.BaseChannel,
                            model_blessing: tfx.types.BaseChannel
                            ) -> base_node.BaseNode:
  """What shows a candidate servable (ServingConfig.validation).

  `local`: ServingValidator, the local TF-Serving-compatible server in a
  subprocess. `kubernetes` (Kubeflow): TFX's InfraValidator, running the
  TF Serving image of ServingConfig.image in a pod beside the pipeline's
  and sending it predictions on serialized examples.
  """
  if serving.validation == 'local':
    return ServingValidator(model=model, examples=examples,
                            model_blessing=model_blessing,
                            num_examples=serving.validation_requests)
  image, tag = serving.image.rsplit(':', 1)
  return tfx.components.InfraValidator(
      model=model, examples=examples,
      serving_spec=tfx.proto.ServingSpec(
          tensorflow_serving=tfx.proto.TensorFlowServing(
              image_name=image, tags=[tag]),
          kubernetes=tfx.proto.KubernetesConfig()),
      request_spec=tfx.proto.RequestSpec(
          tensorflow_serving=tfx.proto.TensorFlowServingRequestSpec(
              signature_names=[EXAMPLES_SIGNATURE]),
          num_examples=serving.validation_requests))


def create_pipeline(
    config: configs.PipelineConfig,
    data_root: Optional[tfx.dsl.experimental.RuntimeParameter] = None
) -> tfx.dsl.Pipeline:
  """The finsent pipeline for `config`; with `data_root`, ExampleGen reads
  the folder that runtime parameter names (Kubeflow) instead."""
  example_gen = create_example_gen(config, data_root)
  schema_gen = tfx.components.ImportSchemaGen(schema_file=config.schema_file)
  schema = schema_gen.outputs['schema']
  data_gate_nodes, data_gate = create_data_gate(
      config, example_gen.outputs['examples'], schema)
  transform = create_transform(config, example_gen.outputs['examples'],
                               schema)
  # Nothing is transformed, trained or pushed unless the data passed.
  transform.add_upstream_node(data_gate)
  components = [example_gen, schema_gen, *data_gate_nodes, transform]

  eval_config = evaluation.create_eval_config(
      config.thresholds.min_accuracy, config.thresholds.min_macro_f1,
      max_drop=config.thresholds.max_drop_from_baseline)
  candidates, pushers = {}, []
  for architecture in configs.ARCHITECTURES:
    # The Tuner fits on what the Trainer fits on, with the same settings.
    training_inputs = dict(
        examples=transform.outputs['transformed_examples'],
        transform_graph=transform.outputs['transform_graph'],
        schema=schema,
        train_args=tfx.proto.TrainArgs(
            num_steps=config.training.train_steps or 0),
        custom_config=config.trainer_custom_config(architecture))
    best_hyperparameters = None
    if config.tuning.enabled:
      tuner = tfx.components.Tuner(
          tuner_fn=configs.TUNER_FN,
          eval_args=tfx.proto.EvalArgs(num_steps=0),
          **training_inputs).with_id(f'Tuner.{architecture}')
      components.append(tuner)
      best_hyperparameters = tuner.outputs['best_hyperparameters']
    trainer = tfx.components.Trainer(
        run_fn=configs.RUN_FN, hyperparameters=best_hyperparameters,
        **training_inputs).with_id(f'Trainer.{architecture}')
    gate = create_model_gate(
        architecture, example_gen.outputs['examples'], trainer,
        eval_config, os.path.join(config.serving_root,
                                  config.serving_model_name(architecture)),
        config.serving)
    components += [trainer, *gate]
    pushers.append(gate[-1])
    evaluator = gate[1]
    candidates[architecture] = {'model': trainer.outputs['model'],
                                'evaluation': evaluator.outputs['evaluation'],
                                'blessing': evaluator.outputs['blessing']}

  model_selector = ModelSelector(
      examples=example_gen.outputs['examples'], candidates=candidates,
      **dataclasses.asdict(config.selection))
  production_gate = create_model_gate(
      PRODUCTION, example_gen.outputs['examples'], model_selector,
      eval_config, os.path.join(config.serving_root,
                                configs.PRODUCTION_MODEL_NAME),
      config.serving)
  components += [model_selector, *production_gate]
  pushers.append(production_gate[-1])

  if config.second_source:
    # The Trainers' models only: the production candidate is a copy of one
    # of them (ModelSelector), whose figures that architecture's row shows.
    components += create_second_source(
        config, {a: c['model'] for a, c in candidates.items()},
        after=pushers)

  return tfx.dsl.Pipeline(
      pipeline_name=config.pipeline_name,
      pipeline_root=config.pipeline_root,
      components=components,
      enable_cache=config.enable_cache,
      # Beside local outputs, ML Metadata in SQLite; with outputs in object
      # storage (Kubeflow, Vertex AI), the orchestrator's own store.
      metadata_connection_config=(
          None if configs.is_uri(config.output_dir) else
          tfx.orchestration.metadata.sqlite_metadata_connection_config(
              config.metadata_path)),
      beam_pipeline_args=list(config.beam_pipeline_args))
