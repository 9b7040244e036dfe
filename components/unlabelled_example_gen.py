"""UnlabelledTextExampleGen: texts without sentiment labels to tf.Examples.

The students of the fine-tuned encoder (models.distillation) may learn from
the teacher's probabilities on texts nobody labelled. TextExampleGen cannot
read those: its readers require a sentiment label on every row, and a
Twitter-FNS *topic* file (`text,label`, labels 0..19) even passes for
Twitter-FNS sentiment until the first label above 2. This ExampleGen reads
only the text of each record (`data.loaders.read_texts`, any format --data
reads) and writes `text` and its `length_bucket`, with no `label` feature,
so nothing downstream can take a topic for a sentiment.

Its examples never go through Transform, StatisticsGen or the DataGate (the
schema requires a label); BulkInferrer reads them, beside the labelled
splits (components.merge_examples), and writes the teacher's probabilities
into them.
"""

import functools
from typing import Tuple

import apache_beam as beam
import tensorflow as tf
from tfx import v1 as tfx
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen import base_example_gen_executor
from tfx.dsl.components.base import executor_spec

from finsent.components import text_example_gen
from finsent.configs import features
from finsent.data import loaders


def text_to_example(text: str) -> tf.train.Example:
  """A text as a tf.Example: `text` and its `length_bucket`, no label."""
  return text_example_gen.example_of({
      features.TEXT_KEY: text,
      features.LENGTH_BUCKET_KEY: features.length_bucket(text)})


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """ExampleGen executor reading texts only (data.loaders.read_texts).

  read_texts fails on a file without any text, so a split is never empty:
  BulkInferrer would write an empty split and succeed.
  """

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return functools.partial(text_example_gen.ReadTextExamples,
                             read=loaders.read_texts,
                             to_example=text_to_example)


class UnlabelledTextExampleGen(FileBasedExampleGen):
  """FileBasedExampleGen over the texts of files of any format --data reads,
  their labels ignored.

  Takes FileBasedExampleGen's arguments; `unlabelled_layout` gives them for
  a path, with the one output split UNLABELLED_SPLIT.
  """
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)


def unlabelled_layout(path: str) -> Tuple[str, tfx.proto.Input,
                                          tfx.proto.Output]:
  """(input_base, input_config, output_config) of UnlabelledTextExampleGen
  for `path`: one split, UNLABELLED_SPLIT, read whole (never hash-split).

  loaders.single_split_layout: a folder laid out as a train file and an
  eval file is refused, since reading an eval split's texts as training
  texts would leak it. Raises loaders.DataFormatError.
  """
  layout = loaders.single_split_layout(path, features.UNLABELLED_SPLIT,
                                       'unlabelled texts')
  input_base, pattern = (layout.input_base,
                         layout.splits[features.UNLABELLED_SPLIT])
  input_config = tfx.proto.Input(splits=[tfx.proto.Input.Split(
      name=features.UNLABELLED_SPLIT, pattern=pattern)])
  # No split_config: the one input split is the output, under its own name.
  # Without an output_config FileBasedExampleGen would hash it 2:1 into
  # `train` and `eval`, which then collide with the labelled splits.
  return input_base, input_config, tfx.proto.Output()
