"""MergeExamples: the splits of two Examples artifacts as one artifact.

BulkInferrer takes one Examples channel, and the teacher's probabilities
are wanted on the labelled splits (TextExampleGen) and on the unlabelled
texts (UnlabelledTextExampleGen) alike. `tfx.types.channel_utils.union`
would join the channels under LocalDagRunner, but the Kubeflow V2 compiler
refuses it ("TypeError: Only single Channel is supported."), so the
artifacts are joined instead: each split's directory is copied as it is
(gzip TFRecords, nothing decoded) into one output artifact.

Split names must not collide: BulkInferrer keys its inputs by split name,
and of two inputs with one split name it silently keeps one. With
`join_same_splits` they are meant to: records labelled with a topic
(TextExampleGen.topics) join the sentiment records split by split, each
split's files side by side in one directory, as one ExampleGen over both
would have written them.
"""

import os

from tfx import v1 as tfx
from tfx.types import artifact_utils
from tfx.dsl.io import fileio
from tfx.types import standard_artifacts

# Custom properties ExampleGen sets (examples_utils): the payload and file
# format, which readers of the merged artifact rely on.
FORMAT_PROPERTIES = ('payload_format', 'file_format')


@tfx.dsl.components.component
def MergeExamples(
    examples: tfx.dsl.components.InputArtifact[standard_artifacts.Examples],
    other_examples: tfx.dsl.components.InputArtifact[
        standard_artifacts.Examples],
    merged_examples: tfx.dsl.components.OutputArtifact[
        standard_artifacts.Examples],
    join_same_splits: tfx.dsl.components.Parameter[int] = 0):
  """Copies the splits of `examples` and `other_examples` into
  `merged_examples`; fails if they differ in payload or file format, and,
  unless `join_same_splits`, if a split name is in both. With
  `join_same_splits` both artifacts must have the same splits, and each
  merged split holds the files of both."""
  for name in FORMAT_PROPERTIES:
    values = {artifact.get_string_custom_property(name)
              for artifact in (examples, other_examples)}
    if len(values) != 1:
      raise ValueError(f'the Examples artifacts differ in {name}: '
                       f'{sorted(values)}')
    value = values.pop()
    if value:
      merged_examples.set_string_custom_property(name, value)
  sources = [examples, other_examples]
  split_names = [artifact_utils.decode_split_names(source.split_names)
                 for source in sources]
  if join_same_splits:
    if sorted(split_names[0]) != sorted(split_names[1]):
      raise ValueError(
          f'the Examples artifacts have different splits to join: '
          f'{sorted(split_names[0])} ({examples.uri}) and '
          f'{sorted(split_names[1])} ({other_examples.uri})')
    splits = {split: sources for split in split_names[0]}
  else:
    splits = {}
    for source, names in zip(sources, split_names):
      for split in names:
        if split in splits:
          raise ValueError(
              f'both Examples artifacts have a split {split!r} ({source.uri} '
              f'and {splits[split][0].uri}); give the unlabelled texts their '
              'own split name')
        splits[split] = [source]
  for split, split_sources in splits.items():
    # Written where artifact_utils.get_split_uri will find it once the
    # output's split_names are set (which must come last: it looks them up).
    destination = os.path.join(merged_examples.uri, f'Split-{split}')
    fileio.makedirs(destination)
    for index, source in enumerate(split_sources):
      source_dir = artifact_utils.get_split_uri([source], split)
      for name in fileio.listdir(source_dir):
        # ExampleGens name their files alike: a prefix keeps both.
        fileio.copy(os.path.join(source_dir, name),
                    os.path.join(destination, f'{index}-{name}'))
  merged_examples.split_names = artifact_utils.encode_split_names(
      list(splits))
  # The labelled examples' span and version: what the merged examples are
  # a version of.
  merged_examples.span = examples.span
  merged_examples.version = examples.version
