"""TextExampleGen: labelled-text files (CSV, Twitter-FNS, JSONL, PhraseBank) to tf.Examples.

A FileBasedExampleGen whose executor reads files with `data.loaders`, so the
formats, their detection and their errors (file and line) are the same in
the pipeline as in `finsent run`'s pre-flight check. Each input split's
files are read in parallel across Beam workers, one file per element.
"""

import os
from typing import Any, Callable, Dict, Iterable, Optional

import apache_beam as beam
import tensorflow as tf
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen import base_example_gen_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio

from finsent.data import loaders
from finsent.configs import features


def example_of(values: Dict[str, Optional[str]]) -> tf.train.Example:
  """A tf.Example of string features; None values are left out."""
  return tf.train.Example(features=tf.train.Features(feature={
      name: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[value.encode('utf-8')]))
      for name, value in values.items() if value is not None}))


def record_to_example(record: loaders.Record) -> tf.train.Example:
  """A canonical record as a tf.Example, with its text's length bucket.

  Absent optional fields stay absent. The bucket is derived here, once, so
  that the drift check and TFMA's slices read the same value.
  """
  values = {name: getattr(record, name) for name in loaders.CANONICAL_FIELDS}
  values[features.LENGTH_BUCKET_KEY] = features.length_bucket(record.text)
  return example_of(values)


class ReadTextExamples(beam.PTransform):
  """tf.Examples of the files matching `split_pattern` under
  `exec_properties['input_base']`, the files spread over Beam's workers,
  one file per element: `to_example` of each thing `read` yields from a
  file (by default each record of a labelled file)."""

  def __init__(self, exec_properties: Dict[str, Any], split_pattern: str,
               read: Callable[[str], Iterable[Any]] = loaders.read_records,
               to_example: Callable[[Any], tf.train.Example] = (
                   record_to_example)):
    super().__init__()
    self._pattern = os.path.join(exec_properties['input_base'],
                                 split_pattern)
    self._read, self._to_example = read, to_example

  def expand(self, pipeline: beam.Pipeline) -> beam.PCollection:
    files = sorted(fileio.glob(self._pattern))
    if not files:
      raise loaders.DataFormatError(self._pattern, None, 'no files match')
    return (pipeline
            | 'ListFiles' >> beam.Create(files)
            | 'Reshuffle' >> beam.Reshuffle()
            | 'Read' >> beam.FlatMap(self._read)
            | 'ToExample' >> beam.Map(self._to_example))


class Executor(base_example_gen_executor.BaseExampleGenExecutor):
  """ExampleGen executor for the formats in `data.loaders`."""

  def GetInputSourceToExamplePTransform(self) -> beam.PTransform:
    return ReadTextExamples


class TextExampleGen(FileBasedExampleGen):
  """FileBasedExampleGen over the text formats of `data.loaders`.

  Takes FileBasedExampleGen's arguments: `input_base`, `input_config` (one
  file pattern per split, or one split to hash-split by `output_config`).
  """
  EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(Executor)
