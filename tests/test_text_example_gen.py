"""components.text_example_gen: the ExampleGen PTransform on Beam's TestPipeline."""

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
import pytest
import tensorflow as tf
import tensorflow_data_validation as tfdv

from finsent.components import text_example_gen
from finsent.data import loaders
from finsent.configs import features
from finsent import configs


def _features(example):
  return {name: feature.bytes_list.value[0].decode('utf-8')
          for name, feature in example.features.feature.items()}


def test_reads_every_file_of_a_split(write, tmp_path):
  write('in/a.csv', 'text,label,source\nProfits soar,positive,blog\n'
        'Date set,neutral,\n')
  write('in/b.csv', 'text,label\nShares sink,negative\n')
  with TestPipeline() as pipeline:
    examples = pipeline | text_example_gen.ReadTextExamples(
        {'input_base': str(tmp_path / 'in')}, '*.csv')
    assert_that(examples | beam.Map(_features), equal_to([
        {'text': 'Profits soar', 'label': 'positive', 'source': 'blog',
         'length_bucket': '1-8'},
        {'text': 'Date set', 'label': 'neutral', 'length_bucket': '1-8'},
        {'text': 'Shares sink', 'label': 'negative', 'length_bucket': '1-8'},
    ]))


def test_a_topic_is_written_beside_or_instead_of_the_label():
  assert _features(text_example_gen.record_to_example(loaders.Record(
      'Fed holds rates', 'neutral', topic='Fed | Central Banks'))) == {
          'text': 'Fed holds rates', 'label': 'neutral',
          'topic': 'Fed | Central Banks', 'length_bucket': '1-8'}
  assert _features(text_example_gen.record_to_example(loaders.Record(
      'Oil slides', topic='Energy | Oil'))) == {
          'text': 'Oil slides', 'topic': 'Energy | Oil',
          'length_bucket': '1-8'}


def test_reads_object_storage_through_tensorflows_file_systems():
  # On a cluster the data is at gs:// or s3://; TensorFlow's in-memory
  # file system (ram://) takes the same code path here.
  with tf.io.gfile.GFile('ram://finsent-data/news.csv', 'w') as f:
    f.write('text,label\nShares sink,negative\n')
  with TestPipeline() as pipeline:
    examples = pipeline | text_example_gen.ReadTextExamples(
        {'input_base': 'ram://finsent-data'}, '*.csv')
    assert_that(examples | beam.Map(_features), equal_to([
        {'text': 'Shares sink', 'label': 'negative', 'length_bucket': '1-8'},
    ]))


@pytest.mark.parametrize('words,bucket', [
    (0, '0'), (1, '1-8'), (8, '1-8'), (9, '9-16'), (16, '9-16'), (17, '17-32'),
    (32, '17-32'), (33, '33+'), (200, '33+')])
def test_length_bucket_counts_whitespace_separated_words(words, bucket):
  assert features.length_bucket(' w\t' * words) == bucket


def test_bad_row_fails_the_pipeline_naming_file_and_line(write, tmp_path):
  write('in/a.csv', 'text,label\nok,neutral\nok,upbeat\n')
  with pytest.raises(Exception, match=r'a\.csv:3: label .upbeat.'):
    with TestPipeline() as pipeline:
      _ = pipeline | text_example_gen.ReadTextExamples(
          {'input_base': str(tmp_path / 'in')}, '*.csv')


def test_pattern_matching_nothing_is_an_error(tmp_path):
  with pytest.raises(loaders.DataFormatError, match='no files match'):
    with TestPipeline() as pipeline:
      _ = pipeline | text_example_gen.ReadTextExamples(
          {'input_base': str(tmp_path)}, '*.csv')


def test_the_curated_schema_lists_exactly_the_length_buckets():
  schema = tfdv.load_schema_text(configs.SCHEMA_FILE)
  domain = set(tfdv.get_domain(schema, features.LENGTH_BUCKET_KEY).value)
  assert domain == {features.length_bucket('w ' * words)
                    for words in range(1, 100)}
  assert features.length_bucket('  ') not in domain
