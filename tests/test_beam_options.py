"""Beam options per runner (data.beam_options): defaults, the image,
and what stops before a run. DirectRunner runs for real in every end-to-end
test; the remote runners are checked as assembled arguments."""

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that
from apache_beam.testing.util import equal_to
import pytest

from finsent.data import beam_options
from finsent import configs

IMAGE = 'europe-docker.pkg.dev/p/finsent/pipeline:1.0'
DATAFLOW = ['--runner=DataflowRunner', '--project=p', '--region=europe-west1',
            '--temp_location=gs://b/tmp']


def test_direct_runner_defaults_are_replaced_by_name():
  assert beam_options.pipeline_args([]) == list(configs.DIRECT_RUNNER_ARGS)
  assert beam_options.pipeline_args(['--direct_num_workers=2']) == [
      '--direct_running_mode=multi_processing',
      '--beam_plugins=finsent.data.beam_worker', '--direct_num_workers=2']
  # Beam takes several plugins: a user's is kept beside the default.
  assert beam_options.pipeline_args(['--beam_plugins=acme.setup'])[-2:] == [
      '--beam_plugins=finsent.data.beam_worker', '--beam_plugins=acme.setup']
  assert beam_options.pipeline_args(['--direct_num_workers=2'],
                                    direct_defaults=()) == [
                                        '--direct_num_workers=2']


def test_the_assembled_direct_runner_args_run_a_pipeline():
  args = beam_options.pipeline_args(['--direct_num_workers=2'])
  with beam.Pipeline(options=PipelineOptions(args)) as pipeline:
    squares = (pipeline | beam.Create(range(5))
               | beam.Map(lambda x: x * x))
    assert_that(squares, equal_to([0, 1, 4, 9, 16]))


def test_dataflow_gets_its_defaults_and_the_pipeline_image():
  args = beam_options.pipeline_args(DATAFLOW, image=IMAGE)
  dataflow = configs.DataflowConfig()
  assert args == [
      f'--machine_type={dataflow.machine_type}',
      f'--max_num_workers={dataflow.max_num_workers}',
      '--experiments=upload_graph', f'--sdk_container_image={IMAGE}',
      *DATAFLOW]
  options = PipelineOptions(args).get_all_options()
  assert options['project'] == 'p' and options['experiments'] == [
      'upload_graph']


def test_dataflow_flags_replace_defaults_and_experiments_add_up():
  args = beam_options.pipeline_args(
      DATAFLOW + ['--machine_type=n2-highmem-8', '--experiments=use_runner_v2',
                  '--sdk_container_image=mine:2'], image=IMAGE)
  options = PipelineOptions(args).get_all_options()
  assert options['machine_type'] == 'n2-highmem-8'
  assert options['experiments'] == ['upload_graph', 'use_runner_v2']
  assert options['sdk_container_image'] == 'mine:2'
  assert f'--sdk_container_image={IMAGE}' not in args


@pytest.mark.parametrize('runner,cluster', [
    ('FlinkRunner', '--flink_master=flink:8081'),
    ('SparkRunner', '--spark_master_url=spark://spark:7077'),
    ('PortableRunner', '--job_endpoint=jobserver:8099'),
])
def test_portable_runners_run_the_pipeline_image_in_docker(runner, cluster):
  args = beam_options.pipeline_args([f'--runner={runner}', cluster],
                                    image=IMAGE)
  assert args == ['--environment_type=DOCKER', f'--environment_config={IMAGE}',
                  f'--runner={runner}', cluster]
  loopback = beam_options.pipeline_args(
      [f'--runner={runner}', cluster, '--environment_type=LOOPBACK'])
  assert loopback == [f'--runner={runner}', cluster,
                      '--environment_type=LOOPBACK']


@pytest.mark.parametrize('args,message', [
    (['stray'], "unrecognized argument 'stray': Beam options are passed as "
     '--name=value'),
    (['--direct_num_workers'], "unrecognized argument '--direct_num_workers'"),
    (['--runer=DataflowRunner', '--projekt=p'],
     'unrecognized arguments --projekt, --runer: not a flag of this command '
     'nor a Beam pipeline option'),
    (['--runner=DataFlow'], '--runner=DataFlow: expected one of DirectRunner,'
     ' DataflowRunner'),
    (['--runner=DataflowRunner', '--project=p'],
     '--runner=DataflowRunner needs --region=..., --temp_location=..., '
     '--sdk_container_image=... (its workers must run an image holding this '
     'project: --sdk_container_image)'),
    (['--runner=FlinkRunner', '--flink_master=f:8081'],
     '--runner=FlinkRunner needs --environment_type=...'),
    (['--runner=SparkRunner', '--environment_type=LOOPBACK'],
     '--runner=SparkRunner needs --spark_master_url=...'),
])
def test_args_that_cannot_run_are_refused(args, message):
  with pytest.raises(beam_options.BeamArgsError) as raised:
    beam_options.pipeline_args(args)
  assert str(raised.value).startswith(message), str(raised.value)
