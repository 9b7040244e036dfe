"""DataGate: stops the run when the data breaks its schema or has drifted.

ExampleValidator (schema anomalies) and DistributionValidator (drift from
the previous accepted data) record what they find but let the pipeline go
on; TFX leaves acting on it to the pipeline. This component is that act:
it fails, naming every anomaly, when either validator did not bless a
split, found a split empty, or recorded no verdict, and, in a run without topic
data, when a record has no sentiment label (the schema lets a record carry
a topic alone), so that Transform, the Trainers and the Pushers never run
on such data. When the data passes, it republishes the statistics as
`validated_statistics`: the baseline the next run's drift check resolves,
so that rejected data never becomes the reference.
"""

import os
from typing import List

from tensorflow_metadata.proto.v0 import anomalies_pb2
from tfx import v1 as tfx
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.dsl.io import fileio
from tfx.types import artifact_utils
from tfx.utils import io_utils

from finsent.configs import features

# The validators' `blessed` values (tfx.components.example_validator and
# distribution_validator executors); the third, "no baseline", passes.
NOT_BLESSED = 0
ANOMALIES_FILE = 'SchemaDiff.pb'


class DataValidationError(RuntimeError):
  """The data has anomalies; the message lists them."""


def _anomaly_lines(anomalies: tfx.types.standard_artifacts.ExampleAnomalies,
                   check: str) -> List[str]:
  """`check: split: feature: description` for every anomaly found.

  A split counts as bad when its validator did not bless it, or found it
  empty; an artifact with no verdict at all counts as bad too (fail closed).
  """
  blessed = anomalies.get_json_value_custom_property('blessed')
  if not blessed:
    return [f'{check}: the validator recorded no verdict ({anomalies.uri})']
  # ExampleValidator writes Split-<split>/, DistributionValidator
  # SplitPair-<split>_<baseline split>/ (nothing when it had no baseline).
  reports = {name.rstrip('/').split('-', 1)[-1]:
             os.path.join(anomalies.uri, name, ANOMALIES_FILE)
             for name in fileio.listdir(anomalies.uri)}
  lines = []
  for split, value in sorted(blessed.items()):
    if split not in reports:
      if value == NOT_BLESSED:
        lines.append(f'{check}: {split}: not blessed, and no report')
      continue
    report = anomalies_pb2.Anomalies.FromString(
        io_utils.read_bytes_file(reports[split]))
    if report.data_missing:
      lines.append(f'{check}: {split}: the split has no examples')
    if value != NOT_BLESSED:
      continue
    infos = sorted(report.anomaly_info.items())
    if report.HasField('dataset_anomaly_info'):
      infos.append(('(dataset)', report.dataset_anomaly_info))
    for feature, info in infos:
      # TFDV puts the details in the reasons, one per kind of anomaly.
      details = '; '.join(r.description for r in info.reason) or (
          info.description)
      lines.append(f'{check}: {split}: {feature}: {details}')
  return lines


def _unlabelled_lines(statistics: tfx.types.standard_artifacts.ExampleStatistics
                      ) -> List[str]:
  """`labels: split: N of M records have no sentiment label` per split
  where some lack one (the schema lets a record carry a topic alone)."""
  lines = []
  for split in artifact_utils.decode_split_names(statistics.split_names):
    dataset = stats_artifact_utils.load_statistics(
        statistics, split).proto().datasets[0]
    missing = dataset.num_examples
    for feature in dataset.features:
      if list(feature.path.step) == [features.LABEL_KEY]:
        missing = feature.string_stats.common_stats.num_missing
    if missing:
      lines.append(f'labels: {split}: {missing} of {dataset.num_examples} '
                   'records have no sentiment label (records with a topic '
                   'alone belong to topic data, --topic_data)')
  return lines


@tfx.dsl.components.component
def DataGate(
    schema_anomalies: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleAnomalies],
    statistics: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleStatistics],
    validated_statistics: tfx.dsl.components.OutputArtifact[
        tfx.types.standard_artifacts.ExampleStatistics],
    # Optional (TFX reads the default None so).
    drift_anomalies: tfx.dsl.components.InputArtifact[
        tfx.types.standard_artifacts.ExampleAnomalies] = None,
    every_record_labelled: tfx.dsl.components.Parameter[int] = 1):
  """Fails on any schema or drift anomaly; else passes the statistics on.

  Without `drift_anomalies` (drift check turned off) only the schema counts.
  With `every_record_labelled` (a run without topic data, whose models
  learn sentiment alone) a record without a sentiment label fails it too.
  """
  problems = _anomaly_lines(schema_anomalies, 'schema')
  if every_record_labelled:
    problems += _unlabelled_lines(statistics)
  if drift_anomalies is not None:
    problems += _anomaly_lines(drift_anomalies, 'drift')
  if problems:
    raise DataValidationError(
        'the data gate stopped the run (nothing was trained or pushed):\n  '
        + '\n  '.join(problems))
  validated_statistics.split_names = statistics.split_names
  validated_statistics.span = statistics.span
  io_utils.copy_dir(statistics.uri, validated_statistics.uri)
