"""MergeExamples: the splits of two Examples artifacts as one artifact.

BulkInferrer takes one Examples channel, and the teacher's probabilities
are wanted on the labelled splits (TextExampleGen) and on the unlabelled
texts (UnlabelledTextExampleGen) alike. `tfx.types.channel_utils.union`
would join the channels under LocalDagRunner, but the Kubeflow V2 compiler
refuses it ("TypeError: Only single Channel is supported."), so the
artifacts are joined instead: each split's directory is copied as it is
(gzip TFRecords, nothing decoded) into one output artifact.

Split names must not collide: BulkInferrer keys its inputs by split name,
and of two inputs with one split name it silently keeps one.
"""

import os

from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.types import standard_artifacts
from tfx.utils import io_utils

# Custom properties ExampleGen sets (examples_utils): the payload and file
# format, which readers of the merged artifact rely on.
FORMAT_PROPERTIES = ('payload_format', 'file_format')


@tfx.dsl.components.component
def MergeExamples(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    other_examples: tfx.dsl.components.InputArtifact[
        standard_artifacts.Examples],
    merged_examples: tfx.dsl.components.OutputArtifact[
        standard_artifacts.Examples]):
  """Copies the splits of `examples` and `other_examples` into
  `merged_examples`; fails if a split name is in both, or if they differ in
  payload or file format."""
  for name in FORMAT_PROPERTIES:
    values = {artifact.get_string_custom_property(name)
              for artifact in (examples, other_examples)}
    if len(values) != 1:
      raise ValueError(f'the Examples artifacts differ in {name}: '
                       f'{sorted(values)}')
    value = values.pop()
    if value:
      merged_examples.set_string_custom_property(name, value)
  splits = {}
  for source in (examples, other_examples):
    for split in artifact_utils.decode_split_names(source.split_names):
      if split in splits:
        raise ValueError(
            f'both Examples artifacts have a split {split!r} ({source.uri} '
            f'and {splits[split].uri}); give the unlabelled texts their own '
            'split name')
      splits[split] = source
  for split, source in splits.items():
    # Written where artifact_utils.get_split_uri will find it once the
    # output's split_names are set (which must come last: it looks them up).
    io_utils.copy_dir(artifact_utils.get_split_uri([source], split),
                      os.path.join(merged_examples.uri, f'Split-{split}'))
  merged_examples.split_names = artifact_utils.encode_split_names(
      list(splits))
  # The labelled examples' span and version: what the merged examples are
  # a version of.
  merged_examples.span = examples.span
  merged_examples.version = examples.version
