"""Every knob of the finsent pipeline, in one place.

`PipelineConfig` is what `create_pipeline` builds from; `finsent run`'s
flags override its fields. Model and preprocessing settings reach the
Transform and Trainer components through their `custom_config`.
"""

import dataclasses
import os
from typing import Dict, List, Optional, Tuple

from models.features import ARCHITECTURES

PIPELINE_NAME = 'finsent'
_DATA_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'data')
SAMPLE_DATA = os.path.join(_DATA_DIR, 'sample', 'financial_headlines.csv')
# The curated data contract ImportSchemaGen loads (reviewed by hand).
SCHEMA_FILE = os.path.join(_DATA_DIR, 'schema', 'schema.pbtxt')
# The winner of the RNN/Transformer tournament is served under this name,
# beside sentiment_<architecture> for each architecture's own model.
PRODUCTION_MODEL_NAME = 'sentiment'

# Module paths, not files: the code is installed (`pip install -e .` here,
# inside the image on Kubeflow), so Beam workers and Trainers import it.
PREPROCESSING_FN = 'models.preprocessing.preprocessing_fn'
RUN_FN = 'models.trainer.run_fn'
TUNER_FN = 'models.tuner.tuner_fn'

# Beam (pipeline.beam_runners assembles the options per runner). Locally:
# DirectRunner with one worker process per core.
DIRECT_RUNNER_ARGS = (
    '--direct_running_mode=multi_processing',
    '--direct_num_workers=0',
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
class PreprocessingConfig:
  """Transform: token vocabulary and padded length (see models.preprocessing)."""
  max_tokens: int = 40
  vocabulary_size: int = 20000
  oov_buckets: int = 50
  # Tokens seen fewer times share the OOV buckets (README, "Measured").
  min_token_frequency: int = 2
  # `words`, or `wordpiece`: subwords learned on Beam from the training
  # split (models.preprocessing; README, "Model quality").
  tokenization: str = 'words'
  # Size of the learned subword vocabulary (WordPiece only).
  wordpiece_vocabulary_size: int = 8000
  # A keras-hub preset (a local directory, gs://, kaggle://, hf://, or a
  # keras-hub preset name): Transform also writes its tokenizer's encoder_*
  # features, and the Transformer is its pretrained encoder, fine-tuned
  # (FineTuningConfig), instead of one trained from scratch
  # (models.pretrained_encoder).
  pretrained_encoder: Optional[str] = None
  # Its padded length in the preset's subword pieces, [CLS] and [SEP]
  # included: more than max_tokens, as words split into pieces.
  encoder_sequence_length: int = 64


@dataclasses.dataclass(frozen=True)
class RnnConfig:
  """Arguments of models.rnn.build_rnn_classifier."""
  embedding_dim: int = 64
  rnn_units: int = 64
  cell: str = 'lstm'
  dropout: float = 0.3


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Arguments of models.transformer.build_transformer_classifier."""
  embedding_dim: int = 64
  num_layers: int = 2
  num_heads: int = 4
  intermediate_dim: int = 128
  dropout: float = 0.3


@dataclasses.dataclass(frozen=True)
class FineTuningConfig:
  """The Transformer as a pretrained encoder (preprocessing's
  `pretrained_encoder`): arguments of
  models.pretrained_encoder.build_pretrained_encoder_classifier, and the
  learning rate that replaces TrainingConfig's for it."""
  dropout: float = 0.1
  # Fine-tuning takes small steps (BERT: 2e-5 to 5e-5); from scratch is 5e-4.
  learning_rate: float = 5e-5


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Trainer settings shared by both architectures (models.trainer.run_fn)."""
  # models.strategy.STRATEGIES; `auto` picks from the environment: a TPU
  # when `tpu` is set, multi-worker when TF_CONFIG names a cluster, mirrored
  # over several GPUs or `cpu_replicas` > 1, else one device.
  strategy: str = 'auto'
  # A Cloud TPU name, grpc://host:port, or 'local' (a TPU VM).
  tpu: Optional[str] = None
  # MirroredStrategy over this many logical CPU devices (where there is no
  # GPU); `finsent run` splits the CPU at start-up.
  cpu_replicas: int = 1
  # The global batch is batch_size x replicas; the learning rate follows it
  # by `learning_rate_scaling` (models.strategy.LEARNING_RATE_SCALINGS).
  batch_size: int = 64  # per replica
  learning_rate: float = 5e-4  # for one replica; the peak of a schedule
  learning_rate_scaling: str = 'sqrt'
  # `constant` or `warmup_cosine`: a linear warm-up over `warmup_epochs`,
  # then a cosine decay to 0 by `max_epochs` (models.trainer
  # .learning_rate_schedule).
  learning_rate_schedule: str = 'constant'
  warmup_epochs: float = 1.0
  # Share of each target spread over all classes, and the focal loss's
  # exponent, which weighs down examples already predicted well
  # (models.sparse_focal_crossentropy); 0 and 0: the plain cross-entropy.
  label_smoothing: float = 0.0
  focal_gamma: float = 0.0
  # A word-vector text file (GloVe's format, or word2vec's/fastText's):
  # the models trained from scratch start their token embedding from it,
  # at its width, and fine-tune it (models.word_vectors; README, "Model
  # quality"). Not used by a pretrained encoder, which has its own.
  word_vectors: Optional[str] = None
  max_epochs: int = 12
  # Stops when held-out accuracy has not improved for `patience` epochs and
  # restores the best epoch's weights (loss turns up epochs earlier, as the
  # models grow confident, while accuracy still improves). Or
  # `val_macro_f1`, what the tournament ranks by, or `val_loss`
  # (models.trainer.EARLY_STOPPING_MONITORS).
  early_stopping_monitor: str = 'val_sparse_categorical_accuracy'
  early_stopping_patience: int = 3
  # Share of the train split held out for early stopping; the eval split is
  # kept for the Evaluator alone.
  validation_fraction: float = 0.1
  # TFX TrainArgs.num_steps: when set, training stops after this many
  # batches in all, without early stopping.
  train_steps: Optional[int] = None
  # `balanced`, `sqrt` or `none` (models.trainer.class_weights); chosen by
  # measurement (README, "Measured").
  class_weighting: str = 'none'
  # `temperature`: the exported model's logits are divided by a temperature
  # fitted on the held-out examples (models.calibration), so the monitoring
  # job's thresholds act on calibrated probabilities; the argmax does not
  # change. `none`: the model's own probabilities.
  calibration: str = 'temperature'
  # A TensorBoard profile of training steps first..last (1-based, across
  # epochs) goes into the model_run artifact (models.profiling).
  profile_steps: Tuple[int, int] = (3, 12)
  seed: int = 42


@dataclasses.dataclass(frozen=True)
class TuningConfig:
  """The TFX Tuner before each Trainer (models.tuner): a random search of
  the architecture's hyperparameters and the learning rate.

  Off by default, as in TFX's templates: on the Twitter-FNS set each trial
  costs about as much as a Trainer's whole fit. The search space is in
  models.tuner.
  """
  enabled: bool = False
  max_trials: int = 6
  # Each trial stops at this many epochs, or earlier by early stopping;
  # it is scored by the Trainer's early_stopping_monitor.
  epochs_per_trial: int = 4


@dataclasses.dataclass(frozen=True)
class BlessingThresholds:
  """Evaluator: a model below either value on the eval split is not blessed.

  Set well above chance (1/3) and above what a constant majority-class model
  reaches in macro-F1 (~0.2-0.3), so a broken model is never pushed.
  """
  min_accuracy: float = 0.55
  min_macro_f1: float = 0.45
  # The production candidate is also compared with the latest blessed
  # production model on the same eval split: neither its accuracy nor its
  # macro-F1 may be more than this much below the baseline's.
  max_drop_from_baseline: float = 0.02


@dataclasses.dataclass(frozen=True)
class DriftThresholds:
  """DataGate: largest L-infinity distance allowed between this run's data
  and the last data that passed the gate, per split (TFDV drift check).

  L-infinity is the largest change of any one value's share: 0.10 lets the
  share of negative headlines move from 30% to 40%, not further.
  """
  label: float = 0.10
  length_bucket: float = 0.10


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
  """ModelSelector: how the production model is chosen (see its module)."""
  # Macro-F1 differences up to this count as a tie, settled by latency.
  macro_f1_tie_margin: float = 0.005
  # Batch-1 requests per model for the p50 latency (after warm-up).
  latency_requests: int = 200


@dataclasses.dataclass(frozen=True)
class BatchingConfig:
  """Server-side batching of concurrent requests (TF Serving's
  BatchingParameters; `batching.config`)."""
  max_batch_size: int = 64
  batch_timeout_micros: int = 2000
  max_enqueued_batches: int = 100
  num_batch_threads: int = 2


@dataclasses.dataclass(frozen=True)
class ServingConfig:
  """How the pushed models are served: by TF Serving in production (the
  image and manifests rendered by serving.model_server_config and
  serving.kubernetes), by `finsent serve` where TF Serving cannot run."""
  # The TF Serving release built against the TensorFlow the models use.
  image: str = 'tensorflow/serving:2.16.1'
  grpc_port: int = 8500
  rest_api_port: int = 8501
  file_system_poll_wait_seconds: int = 1
  # Versions kept loaded per model: the newest is labelled `canary`, the
  # one before it `stable` (TF Serving's latest{num_versions: 2}).
  num_versions: int = 2
  batching: BatchingConfig = BatchingConfig()
  # What shows a candidate servable before it is pushed: `local` (the local
  # server, components/serving_validator.py; in the pipeline's pod on
  # Kubeflow) or `kubernetes` (TFX's InfraValidator running `image` in a pod
  # beside a LocalDagRunner's; TFX 1.16's Kubeflow v2 compiler refuses
  # InfraValidator); and how many eval examples it predicts on.
  validation: str = 'local'
  validation_requests: int = 16
  # Kubernetes: replicas of the TF Serving Deployment, the volume claim
  # holding the push destination, and each replica's resources.
  replicas: int = 2
  models_volume_claim: str = 'finsent-serving-models'
  models_mount_path: str = '/models'
  cpu: str = '2'
  memory: str = '4Gi'


def is_uri(path: str) -> bool:
  """Object storage (gs://, s3://) rather than a local path."""
  return '://' in path


def absolute_path(path: str) -> str:
  """A local path made absolute; a URI as it is."""
  return path if is_uri(path) else os.path.abspath(path)


@dataclasses.dataclass(frozen=True)
class PipelineConfig:
  """Where the pipeline reads and writes, and how each component runs."""
  data: str = SAMPLE_DATA
  # Split name -> file pattern under `data`, a folder; when empty the
  # layout is read from the data itself (data.loaders.resolve_input).
  data_splits: Tuple[Tuple[str, str], ...] = ()
  output_dir: str = '.'
  pipeline_name: str = PIPELINE_NAME
  # The curated schema, where the pipeline's tasks read it.
  schema_file: str = SCHEMA_FILE
  # Push destination root; each model goes to <root>/<model name>/<version>.
  serving_model_dir: Optional[str] = None
  # train:eval hash buckets, for data that has no split of its own.
  split_hash_buckets: Tuple[int, int] = (4, 1)
  enable_cache: bool = False
  # False accepts a deliberate change of data (a new source, another
  # dataset): the drift check is skipped and this data becomes the baseline.
  check_drift: bool = True
  beam_pipeline_args: Tuple[str, ...] = DIRECT_RUNNER_ARGS
  preprocessing: PreprocessingConfig = PreprocessingConfig()
  rnn: RnnConfig = RnnConfig()
  transformer: TransformerConfig = TransformerConfig()
  fine_tuning: FineTuningConfig = FineTuningConfig()
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

  def serving_model_name(self, architecture: str) -> str:
    return f'{PRODUCTION_MODEL_NAME}_{architecture}'

  @property
  def served_model_names(self) -> List[str]:
    """Every name the Pushers push to: the production model first."""
    return [PRODUCTION_MODEL_NAME] + [
        self.serving_model_name(a) for a in ARCHITECTURES]

  def trainer_custom_config(self, architecture: str) -> Dict:
    """What models.trainer.run_fn (and models.tuner.tuner_fn, from the
    Tuner's) reads from the Trainer's custom_config. With a pretrained
    encoder the Transformer's hyperparameters and learning rate are
    `fine_tuning`'s, and it reads no word vectors."""
    pretrained_encoder = (self.preprocessing.pretrained_encoder
                          if architecture == 'transformer' else None)
    training = dataclasses.asdict(self.training)
    if pretrained_encoder:
      hyperparameters = dataclasses.asdict(self.fine_tuning)
      training['learning_rate'] = hyperparameters.pop('learning_rate')
      training['word_vectors'] = None
    else:
      hyperparameters = dataclasses.asdict(getattr(self, architecture))
    return {
        'architecture': architecture,
        'pretrained_encoder': pretrained_encoder,
        'hyperparameters': hyperparameters,
        'training': training,
        'tuning': dataclasses.asdict(self.tuning),
        'oov_buckets': self.preprocessing.oov_buckets,
    }


# --- Kubeflow Pipelines and Vertex AI Pipelines (kubeflow/runner.py) ---

@dataclasses.dataclass(frozen=True)
class ContainerResources:
  """Limits of a Trainer's container: in the compiled pipeline (the
  PipelineSpec's resources, as kfp's set_cpu_limit, set_memory_limit and
  set_accelerator_type/limit) and in a TFJob's pods (kubeflow/tfjob.py)."""
  cpu_limit: float = 8.0
  memory_limit_gb: float = 32.0
  # e.g. NVIDIA_TESLA_T4 (Vertex AI) or nvidia.com/gpu (Kubeflow).
  accelerator_type: Optional[str] = None
  accelerator_count: int = 0


@dataclasses.dataclass(frozen=True)
class KubeflowConfig:
  """The pipeline compiled to a PipelineSpec (`finsent compile-kubeflow`).

  Every pod runs `image` (the Dockerfile: the lock's packages and this
  project), and reads and writes object storage that TensorFlow's file
  system reaches (gs://, s3://): pipeline outputs under `output_dir`,
  pushed models under <output_dir>/serving_model for TF Serving.
  """
  image: str = 'finsent-pipeline:latest'
  # Where the Dockerfile puts the project inside the image (its WORKDIR).
  image_project_dir: str = '/pipeline'
  output_dir: str = 'gs://finsent-pipelines'
  # The data folder is a runtime parameter of the compiled pipeline
  # (`data_root`); its split files are named here, as the cluster's storage
  # is not listed when compiling.
  data_root: str = 'gs://finsent-pipelines/data/twitter_financial_news_sentiment'
  data_splits: Tuple[Tuple[str, str], ...] = (('train', 'sent_train.csv'),
                                              ('eval', 'sent_valid.csv'))
  trainer: ContainerResources = ContainerResources()
  output_file: str = 'kubeflow/build/finsent_pipeline.json'


# --- The monitoring job (`finsent monitor`, monitoring/) ---

# Company names -> tickers, besides $cashtags (monitoring/entities.py).
TICKER_ALIASES = os.path.join(_DATA_DIR, 'ticker_aliases.csv')


@dataclasses.dataclass(frozen=True)
class ShockConfig:
  """When a window is a negative-sentiment shock (monitoring/shocks.py).

  A window's `metric` is compared with the same key's trailing baseline:
  its windows that ended within `baseline_seconds` before this window
  starts (so never overlapping it). The robust z-score is
  (value - median) / max(1.4826 * MAD, min_scale): the median and the
  median absolute deviation resist earlier shocks in the baseline, and
  `min_scale` keeps a flat baseline from turning noise into alerts.
  """
  # share_negative (alerts when it rises) or mean_score (when it falls).
  metric: str = 'share_negative'
  z_threshold: float = 3.5
  # Headlines a window needs before it can alert. Below 20 the share's own
  # sampling error (sqrt(p(1-p)/n) is 0.10 at p=0.3, n=20) reaches
  # min_scale, and a handful of headlines makes a "shock": with 10, a
  # shuffled replay with no shock alerted on tickers whose windows held
  # 14-15 headlines (README, "Monitoring").
  min_count: int = 20
  # Headlines a window needs to be part of a baseline.
  min_baseline_count: int = 5
  baseline_seconds: int = 6 * 3600
  # Baseline windows needed before a key can alert at all.
  min_baseline_windows: int = 12
  # Floor of the baseline's spread, in the metric's units (a share of 0.10
  # is 10 percentage points).
  min_scale: float = 0.10
  # Headlines an alert quotes: the window's most negative.
  top_headlines: int = 5


@dataclasses.dataclass(frozen=True)
class MonitorConfig:
  """Scoring, windows and outputs of the monitoring job."""
  # Sliding event-time windows (published_at), per ticker and overall.
  window_seconds: int = 3600
  period_seconds: int = 300
  # Headlines later than the watermark by up to this much still update
  # their windows (a late pane); later ones are dropped by Beam and counted.
  allowed_lateness_seconds: int = 3600
  # RunInference batches (beam.BatchElements bounds).
  min_batch_size: int = 16
  max_batch_size: int = 256
  # Through a server: the client's timeout and retries per batch before a
  # batch's headlines go to the dead letters.
  timeout_seconds: float = 10.0
  retries: int = 3
  # Alerts POSTed to a webhook (when one is given): timeout and retries.
  webhook_timeout_seconds: float = 5.0
  webhook_retries: int = 3
  # A watched directory (--watch): seconds between looks for new files.
  file_system_poll_wait_seconds: float = 10.0
  shock: ShockConfig = ShockConfig()


@dataclasses.dataclass(frozen=True)
class ReplayConfig:
  """`finsent replay`: labelled data -> a timestamped headline stream with
  an injected negative shock (monitoring/replay.py)."""
  start: str = '2026-03-02T00:00:00Z'
  span_hours: float = 12.0
  tickers: Tuple[str, ...] = ('ACME', 'BOLT', 'CRUX', 'DYNA')
  # Share of headlines given a ticker's cashtag; the rest are market-wide.
  ticker_share: float = 0.6
  # Where in the span the shock starts (0..1), how many negative headlines
  # it adds for the shocked ticker, and over how many minutes.
  shock_at: float = 0.75
  shock_size: int = 30
  shock_minutes: float = 15.0
  seed: int = 7
