"""TextExampleGen: labelled-text files (CSV, Twitter-FNS, JSONL, PhraseBank) to tf.Examples.

A FileBasedExampleGen whose executor reads files with `data.loaders`, so the
formats, their detection and their errors (file and line) are the same in
the pipeline as in `finsent run`'s pre-flight check. Each input split's
files are read in parallel across Beam workers, one file per element.
"""

import os
from typing import Any, Dict

import apache_beam as beam
import tensorflow as tf
from tfx.components import FileBasedExampleGen
from tfx.components.example_gen import base_example_gen_executor
from tfx.dsl.components.base import executor_spec
from tfx.dsl.io import fileio

from finsent.data import loaders
from finsent.configs import features


def record_to_example(record: loaders.Record) -> tf.train.Example:
  """A canonical record as a tf.Example, with its text's length bucket.

  Absent optional fields stay absent. The bucket is derived here, once, so
  that the drift check and TFMA's slices read the same value.
  """
  values = {name: getattr(record, name) for name in loaders.CANONICAL_FIELDS}
  values[features.LENGTH_BUCKET_KEY] = features.length_bucket(record.text)
  return tf.train.Example(features=tf.train.Features(feature={
      name: tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[value.encode('utf-8')]))
      for name, value in values.items() if value is not None}))


@beam.ptransform_fn
@beam.typehints.with_input_types(beam.Pipeline)
@beam.typehints.with_output_types(tf.train.Example)
def ReadTextExamples(pipeline: beam.Pipeline,
                     exec_properties: Dict[str, Any],
                     split_pattern: str) -> beam.PCollection:
  """Reads the files matching `split_pattern` under `input_base`."""
  pattern = os.path.join(exec_properties['input_base'], split_pattern)
  files = sorted(fileio.glob(pattern))
  if not files:
    raise loaders.DataFormatError(pattern, None, 'no files match')
  return (pipeline
          | 'ListFiles' >> beam.Create(files)
          | 'Reshuffle' >> beam.Reshuffle()
          | 'ReadRecords' >> beam.FlatMap(loaders.read_records)
          | 'ToExample' >> beam.Map(record_to_example))


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
