"""PipelineConfig: every knob of one pipeline, the root `create_pipeline`
builds from; `finsent run`'s flags and `--config` file override it."""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

from finsent.configs.features import ARCHITECTURES
from finsent.configs.features import candidate_architecture
from finsent.configs.features import STUDENT_SUFFIX
from finsent.configs.features import TEACHER_PROBABILITIES_KEY
from finsent.configs.features import TEACHER_TOPIC_PROBABILITIES_KEY
from finsent.configs.features import TOPICS
from finsent.configs.features import UNLABELLED_SPLIT
from finsent.configs.gates import BlessingThresholds
from finsent.configs.gates import DriftThresholds
from finsent.configs.gates import SelectionConfig
from finsent.configs.knobs import knob
from finsent.configs.paths import absolute_path
from finsent.configs.paths import is_uri
from finsent.configs.paths import SAMPLE_DATA
from finsent.configs.paths import SCHEMA_FILE
from finsent.configs.serving import PRODUCTION_MODEL_NAME
from finsent.configs.serving import ServingConfig
from finsent.configs.training import DistillationConfig
from finsent.configs.training import FINE_TUNING_TRAINING
from finsent.configs.training import FineTuningConfig
from finsent.configs.training import PreprocessingConfig
from finsent.configs.training import TOPIC_MODELS
from finsent.configs.training import RnnConfig
from finsent.configs.training import TrainingConfig
from finsent.configs.training import TransformerConfig
from finsent.configs.training import TuningConfig

PIPELINE_NAME = 'finsent'

# Module paths, not files: the code is installed (`pip install -e .` here,
# inside the image on Kubeflow), so Beam workers and Trainers import it.
PREPROCESSING_FN = 'finsent.models.preprocessing.preprocessing_fn'
RUN_FN = 'finsent.models.trainer.run_fn'
# The version of the exported SavedModel's signatures (models/export.py),
# in every Trainer's custom_config: TFX's cache keys a Trainer on its exec
# properties, so `--enable_cache` never hands BulkInferrer or the gates a
# model exported with other signatures. 2: `bulk_inference` added.
EXPORT_SIGNATURES_VERSION = 2
TUNER_FN = 'finsent.models.tuner.tuner_fn'

# Beam (data.beam_options assembles the options per runner). Locally:
# DirectRunner with one worker process per core, each of which imports
# data.beam_worker first (it frees the models Beam's cache holds before
# the worker exits).
DIRECT_RUNNER_ARGS = (
    '--direct_running_mode=multi_processing',
    '--direct_num_workers=0',
    '--beam_plugins=finsent.data.beam_worker',
)


@dataclasses.dataclass(frozen=True)
class DataflowConfig:
  """DataflowRunner's defaults (its own flags replace them)."""
  machine_type: str = 'n1-standard-4'
  max_num_workers: int = 10
  # upload_graph: Transform's graph (tokenizer, vocabulary) can outgrow
  # the size limit of a Dataflow job request.
  experiments: Tuple[str, ...] = ('upload_graph',)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Where the pipeline reads and writes, and how each component runs."""
  data: str = knob(
      SAMPLE_DATA, 'data file or folder (CSV, Twitter-FNS CSV, JSONL, '
      'PhraseBank .txt); the bundled sample by default', metavar='PATH')
  # When empty the layout is read from the data itself
  # (data.loaders.resolve_input).
  data_splits: Tuple[Tuple[str, str], ...] = knob(
      (), 'split name -> file pattern under `data`, a folder', cli=False)
  # Joined with `data` split by split: pipeline.create_examples.
  topic_data: Optional[str] = knob(
      None, 'records labelled with a topic (Twitter Financial News Topic, '
      'or any format --data reads with a topic column), a file or a folder '
      "laid out as --data's: their train and eval records join --data's, "
      'and the models learn a topic head beside the sentiment one from '
      'them; for compile-kubeflow a gs:// path', metavar='PATH')
  # Measured both ways: docs/results/topics.md.
  topic_model: str = knob(
      'separate', 'with --topic_data, what each candidate trained on the '
      'labels is: `separate`, a model per head, each trained on the records '
      'labelled for it and served as one SavedModel; `joint`, one model with '
      'both heads (the students always have both)', choices=TOPIC_MODELS)
  # Scored, never trained on: pipeline.create_second_source.
  second_source: Optional[str] = knob(
      None, 'a labelled file from another source, in any format --data '
      "reads (or a folder of them, scored as one split): every architecture's "
      'model is scored on it by TFMA beside the eval split, never trained on '
      'and never a gate; for compile-kubeflow a gs:// file', metavar='PATH')
  # Read for their text only: pipeline.create_distillation.
  unlabelled: Optional[str] = knob(
      None, 'texts without labels, in any format --data reads (labels, if '
      "any, are ignored), or a folder of them: the teacher's probabilities "
      'on them train the students beside the training split; for '
      'compile-kubeflow a gs:// file', metavar='PATH')
  output_dir: str = knob(
      '.', 'where tfx_pipeline_output/, tfx_metadata/ and serving_model/ go')
  pipeline_name: str = knob(PIPELINE_NAME, "the pipeline's name in ML "
                            'Metadata and its output paths')
  schema_file: str = knob(SCHEMA_FILE, 'the curated schema, where the '
                          "pipeline's tasks read it", cli=False)
  serving_model_dir: Optional[str] = knob(
      None, 'push destination root; each model goes to <root>/<model '
      'name>/<version> (default: <output_dir>/serving_model)', metavar='DIR')
  split_hash_buckets: Tuple[int, int] = knob(
      (4, 1), 'train:eval hash buckets, for data that has no split of its '
      'own', cli=False)
  enable_cache: bool = knob(
      False, "reuse outputs of components whose inputs did not change "
      "(TFX's cache)")
  check_drift: bool = knob(
      True, 'accept a deliberate change of data (a new source or dataset): '
      'no drift check against the last accepted data, which this data then '
      'replaces as the baseline', flag='skip_drift_check', negated=True)
  beam_pipeline_args: Tuple[str, ...] = knob(
      DIRECT_RUNNER_ARGS, "Beam's pipeline options (on the command line: "
      'any --flag the command does not know)', cli=False)
  preprocessing: PreprocessingConfig = PreprocessingConfig()
  rnn: RnnConfig = RnnConfig()
  transformer: TransformerConfig = TransformerConfig()
  fine_tuning: FineTuningConfig = FineTuningConfig()
  distillation: DistillationConfig = DistillationConfig()
  training: TrainingConfig = TrainingConfig()
  tuning: TuningConfig = TuningConfig()
  thresholds: BlessingThresholds = BlessingThresholds()
  drift: DriftThresholds = DriftThresholds()
  selection: SelectionConfig = SelectionConfig()
  serving: ServingConfig = ServingConfig()

  @property
  def pipeline_root(self) -> str:
    return absolute_path(os.path.join(
        self.output_dir, 'tfx_pipeline_output', self.pipeline_name))

  @property
  def metadata_path(self) -> str:
    return absolute_path(os.path.join(
        self.output_dir, 'tfx_metadata', self.pipeline_name, 'metadata.db'))

  @property
  def serving_root(self) -> str:
    return absolute_path(self.serving_model_dir or os.path.join(
        self.output_dir, 'serving_model'))

  @property
  def local_metadata(self) -> bool:
    """ML Metadata in SQLite beside local outputs; with outputs in object
    storage (Kubeflow, Vertex AI), the orchestrator's own store."""
    return not is_uri(self.output_dir)

  def serving_model_name(self, candidate: str) -> str:
    return f'{PRODUCTION_MODEL_NAME}_{candidate}'

  @property
  def num_topics(self) -> int:
    """The topic head's classes: every topic with topic data, else none."""
    return len(TOPICS) if self.topic_data else 0

  @property
  def distilling(self) -> bool:
    """Whether the Transformer (a pretrained encoder) teaches students."""
    return bool(self.preprocessing.pretrained_encoder and
                self.distillation.enabled)

  @property
  def candidates(self) -> Tuple[str, ...]:
    """The models trained and weighed by the tournament: the teacher and
    its students when distilling, else each architecture on the labels."""
    if self.distilling:
      return ('transformer',) + tuple(f'{a}{STUDENT_SUFFIX}'
                                      for a in ARCHITECTURES)
    return ARCHITECTURES

  @property
  def served_model_names(self) -> List[str]:
    """Every name the Pushers push to: the production model first."""
    return [PRODUCTION_MODEL_NAME] + [
        self.serving_model_name(c) for c in self.candidates]

  def trainer_custom_config(self, candidate: str) -> Dict:
    """What models.trainer.run_fn (and models.tuner.tuner_fn, from the
    Tuner's) reads from the Trainer's custom_config. With a pretrained
    encoder the Transformer's hyperparameters, learning rate, epochs,
    batch size and schedule are `fine_tuning`'s, and it reads no word
    vectors. A student (`<architecture>_student`) is its architecture
    trained from scratch, with `distillation`'s settings (and no word
    vectors where it reads the teacher's pieces)."""
    architecture = candidate_architecture(candidate)
    student = candidate != architecture
    pretrained_encoder = (self.preprocessing.pretrained_encoder
                          if candidate == 'transformer' else None)
    training = dataclasses.asdict(self.training)
    if pretrained_encoder:
      hyperparameters = dataclasses.asdict(self.fine_tuning)
      for name, training_name in FINE_TUNING_TRAINING.items():
        training[training_name] = hyperparameters.pop(name)
      training['word_vectors'] = None
    else:
      hyperparameters = dataclasses.asdict(getattr(self, architecture))
    distillation = None
    if student:
      if self.distillation.tokens == 'teacher_pieces':
        # Word vectors index Transform's words, which it does not read.
        training['word_vectors'] = None
      distillation = {
          **dataclasses.asdict(self.distillation),
          'teacher_probabilities_key': TEACHER_PROBABILITIES_KEY,
          'teacher_topic_probabilities_key': TEACHER_TOPIC_PROBABILITIES_KEY,
          'unlabelled_split': UNLABELLED_SPLIT,
          # The preset whose pieces and embeddings a teacher_pieces student
          # reads.
          'teacher_encoder': self.preprocessing.pretrained_encoder,
      }
      del distillation['enabled']
    return {
        'architecture': architecture,
        'candidate': candidate,
        'pretrained_encoder': pretrained_encoder,
        'hyperparameters': hyperparameters,
        'training': training,
        'tuning': dataclasses.asdict(self.tuning),
        'oov_buckets': self.preprocessing.oov_buckets,
        'export_signatures_version': EXPORT_SIGNATURES_VERSION,
        'distillation': distillation,
        'num_topics': self.num_topics,
        'topic_model': self.topic_model,
    }
