"""The pipeline's knobs as flags, for `finsent run`, `train-worker` and
`compile-kubeflow` alike: one group per config section, each flag from its
knob's declaration (configs.knobs), plus `--config FILE`.

Two flags need library code to check their value (a word-vector file's
format, a keras-hub preset): it is imported when such a value is parsed,
never for `--help`.
"""

import argparse
import dataclasses
from typing import Callable, Dict, Optional, Sequence

from finsent import configs
from finsent.configs import knobs

# PipelineConfig's own knobs that are `finsent run`'s flags.
RUN_FLAGS = ('data', 'topic_data', 'topic_model', 'second_source',
             'unlabelled', 'output_dir', 'pipeline_name', 'serving_model_dir',
             'enable_cache', 'check_drift')


def _word_vectors(value: str) -> str:
  """A word-vector text file; a remote one (scheme://) is read by the
  Trainer only."""
  if configs.is_uri(value):
    return value
  from finsent.models import word_vectors
  try:
    word_vectors.dimension(value)
  except word_vectors.WordVectorsError as e:
    raise argparse.ArgumentTypeError(str(e)) from None
  return value


def _preset(value: str) -> Optional[str]:
  """A keras-hub preset (pretrained_encoder.check_preset), or None for
  `none` (the Transformer from scratch)."""
  if value.lower() == configs.NO_ENCODER:
    return None
  from finsent.models import pretrained_encoder
  try:
    return pretrained_encoder.check_preset(value)
  except pretrained_encoder.PresetError as e:
    raise argparse.ArgumentTypeError(str(e)) from None


_CHECKS: Dict[str, Callable[[str], str]] = {'word_vectors': _word_vectors,
                                            'pretrained_encoder': _preset}


class PipelineFlags:
  """The flags of a PipelineConfig's sections, added to a parser."""

  def __init__(self, parser: argparse.ArgumentParser,
               defaults: configs.PipelineConfig, *,
               top: Sequence[str] = RUN_FLAGS,
               top_help: Optional[Dict[str, str]] = None,
               preprocessing: Optional[Sequence[str]] = None,
               tuning: bool = True):
    """`top`: PipelineConfig's own knobs to add; `preprocessing`: the
    PreprocessingConfig knobs to add (None: all)."""
    self._defaults = defaults
    self._top = knobs.add_flags(parser, defaults, only=top, help=top_help)
    self._sections = {
        'preprocessing': knobs.add_flags(
            parser.add_argument_group(
                'Transform (preprocessing; docs/models.md)'),
            defaults.preprocessing, only=preprocessing, parse=_CHECKS),
        'training': knobs.add_flags(
            parser.add_argument_group(
                'Trainers (training; docs/training.md)'),
            defaults.training, parse=_CHECKS),
        'fine_tuning': knobs.add_flags(
            parser.add_argument_group(
                'The Transformer as a pretrained encoder (fine_tuning; '
                'docs/models.md)'),
            defaults.fine_tuning, prefix='fine_tuning_'),
        'distillation': knobs.add_flags(
            parser.add_argument_group(
                "The fine-tuned encoder's students (distillation; "
                'docs/models.md)'),
            defaults.distillation),
    }
    if tuning:
      self._sections['tuning'] = knobs.add_flags(
          parser.add_argument_group('Tuners (tuning)'), defaults.tuning)

  def config(self, args: argparse.Namespace, **replaced
             ) -> configs.PipelineConfig:
    """The defaults with the parsed flags' values (and `replaced`)."""
    config = self._top.read(args)
    sections = {name: flags.read(args, getattr(config, name))
                for name, flags in self._sections.items()}
    return dataclasses.replace(config, **sections, **replaced)


def cluster_problem(config: configs.PipelineConfig) -> Optional[str]:
  """Why a cluster's pods could not read the pretrained encoder, the word
  vectors or the second source of `config`, files of the machine that
  compiles their job; None if they could."""
  from finsent.models import pretrained_encoder
  from finsent.models import word_vectors
  return (pretrained_encoder.cluster_problem(
      config.preprocessing.pretrained_encoder) or
          word_vectors.cluster_problem(config.training.word_vectors) or
          second_source_cluster_problem(config.second_source) or
          unlabelled_cluster_problem(config.unlabelled) or
          topic_data_cluster_problem(config.topic_data))


def _object_storage_file_problem(flag: str, path: Optional[str],
                                 layout: Callable[[str], object]
                                 ) -> Optional[str]:
  """Why the pods of a compiled pipeline could not read the file `path`
  of `--flag`: a path of this machine, or an object-storage path `layout`
  refuses (one data file); None if they could."""
  if not path:
    return None
  if not configs.is_uri(path):
    return (f'--{flag} {path}: a path of this machine, which the '
            "cluster's pods cannot read; copy the file to object storage "
            '(gs://BUCKET/...) and name it there')
  from finsent.data import loaders
  try:
    layout(path)
  except loaders.DataFormatError as e:
    return f'--{flag} {e}'
  return None


def second_source_cluster_problem(path: Optional[str]) -> Optional[str]:
  """_object_storage_file_problem for --second_source."""
  from finsent.pipeline import pipeline
  return _object_storage_file_problem('second_source', path,
                                      pipeline.second_source_layout)


def unlabelled_cluster_problem(path: Optional[str]) -> Optional[str]:
  """_object_storage_file_problem for --unlabelled."""
  from finsent.components import unlabelled_example_gen
  return _object_storage_file_problem(
      'unlabelled', path, unlabelled_example_gen.unlabelled_layout)


def topic_data_cluster_problem(path: Optional[str]) -> Optional[str]:
  """_object_storage_file_problem for --topic_data."""
  from finsent.pipeline import pipeline
  return _object_storage_file_problem('topic_data', path,
                                      pipeline.topic_data_layout)


def unlabelled_problem(config: configs.PipelineConfig) -> Optional[str]:
  """Why `--unlabelled` cannot be used with `config`: only students read
  it."""
  if config.unlabelled and not config.distilling:
    return (f'--unlabelled {config.unlabelled}: unlabelled texts train only '
            "the fine-tuned encoder's students, and this run has none ("
            + ('--skip_distillation' if config.preprocessing.pretrained_encoder
               else '--pretrained_encoder none') + ')')
  return None


def word_vectors_heads_problem(config: configs.PipelineConfig
                               ) -> Optional[str]:
  """Why the Transformer of `config` cannot start from its word vectors
  (word_vectors.heads_problem), found before the pipeline rather than in
  its Trainer. Not when a pretrained encoder replaces the Transformer or
  the Tuner chooses its heads."""
  path = config.training.word_vectors
  if (not path or configs.is_uri(path) or
      config.preprocessing.pretrained_encoder or config.tuning.enabled):
    return None
  from finsent.models import word_vectors
  return word_vectors.heads_problem(path, word_vectors.dimension(path),
                                    config.transformer.num_heads)
