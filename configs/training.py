"""Knobs of Transform, the models, the Trainers and the Tuners.

They reach the components through `custom_config`
(PipelineConfig.trainer_custom_config) and are `finsent run`'s,
`train-worker`'s and `compile-kubeflow`'s flags (configs.knobs).
docs/models.md says what each choice does and how it was chosen.
"""

import dataclasses
from typing import Optional, Tuple

from finsent.configs import flag_types
from finsent.configs.knobs import Choice, FloatRange, IntRange, knob

# Choices, here so that flags and configs can be checked without loading
# the libraries that act on them.
TOKENIZATIONS = ('words', 'wordpiece')                  # models.preprocessing
STRATEGIES = ('auto', 'default', 'mirrored', 'multi_worker_mirrored', 'tpu')
# How the learning rate follows the global batch: `linear` (Goyal et al.,
# 2017: lr x replicas, for SGD), `sqrt` (lr x sqrt(replicas), the rule that
# keeps the gradient noise scale of adaptive optimisers like Adam), `none`.
LEARNING_RATE_SCALINGS = ('sqrt', 'linear', 'none')
LEARNING_RATE_SCHEDULES = ('constant', 'warmup_cosine')  # models.trainer
CLASS_WEIGHTINGS = ('balanced', 'sqrt', 'none')          # models.trainer
EARLY_STOPPING_MONITORS = ('val_sparse_categorical_accuracy', 'val_macro_f1',
                           'val_loss')
# A pretrained encoder's classification head (models.pretrained_encoder).
ENCODER_HEADS = ('mean_pooling', 'cls')
# The Transformer by default: the encoder a package of the lock ships
# (models.packaged_encoder; docs/models.md, "The packaged encoder").
DEFAULT_ENCODER = 'all-minilm-l6-v2'
# --pretrained_encoder's value for the Transformer trained from scratch.
NO_ENCODER = 'none'
# FineTuningConfig's knobs that replace TrainingConfig's (by that name)
# when the Transformer is a pretrained encoder.
FINE_TUNING_TRAINING = {'learning_rate': 'learning_rate',
                        'batch_size': 'batch_size',
                        'group_by_length': 'group_by_length',
                        'epochs': 'max_epochs',
                        'learning_rate_schedule': 'learning_rate_schedule',
                        'warmup_epochs': 'warmup_epochs',
                        'head_epochs': 'head_epochs',
                        'head_learning_rate': 'head_learning_rate'}
# A fitted temperature, or the model's own probabilities (models.calibration).
CALIBRATIONS = ('temperature', 'none')
# How a student's cross-entropy on the labels is averaged
# (models.distillation): over the labelled examples of each batch, so that
# `alpha` means the same whatever the share of unlabelled texts; or over the
# whole batch (Hinton et al. 2015).
HARD_TERM_MEANS = ('labelled', 'batch')
# What a student reads (models.trainer.prepare_training).
STUDENT_TOKENS = ('teacher_pieces', 'words')
# With topic data, what a candidate trained on the labels is
# (models.trainer.run_fn): one model per head, each on the records labelled
# for it and served as one, or one model with both heads.
TOPIC_MODELS = ('separate', 'joint')


@dataclasses.dataclass(frozen=True)
class PreprocessingConfig:
  """Transform: token vocabulary and padded length (models.preprocessing)."""
  max_tokens: int = knob(40, 'padded length of a headline in tokens',
                         parse=flag_types.positive_int)
  vocabulary_size: int = knob(20000, 'most frequent tokens kept',
                              parse=flag_types.positive_int)
  oov_buckets: int = knob(50, 'hash buckets shared by the other tokens',
                          parse=flag_types.positive_int)
  # docs/models.md, "Measured".
  min_token_frequency: int = knob(
      2, 'tokens seen fewer times in the training split share the OOV '
      'buckets', parse=flag_types.positive_int)
  tokenization: str = knob(
      'words', 'whole words, or WordPiece subwords learned on Beam from the '
      'training split', choices=TOKENIZATIONS)
  wordpiece_vocabulary_size: int = knob(
      8000, 'size of the learned subword vocabulary (wordpiece only)',
      parse=flag_types.positive_int)
  pretrained_encoder: Optional[str] = knob(
      DEFAULT_ENCODER, 'the Transformer: this pretrained encoder, '
      'fine-tuned, with its own tokenizer (Transform then also writes its '
      'encoder_* features): a packaged encoder (all-minilm-l6-v2, installed '
      'by the lock); a keras-hub preset directory; a gs://, kaggle:// or '
      'hf:// handle; a keras-hub preset name such as bert_tiny_en_uncased; '
      f'or {NO_ENCODER}: a Transformer trained from scratch',
      metavar='PRESET')
  # Long enough for other sources than headlines: Twitter-FNS headlines
  # run to a median of 26 pieces (99 % within 57), FinEntity's Reuters
  # sentences to 54 (99 % within 124). With fine_tuning.trim_padding a
  # batch costs only as much as its longest text.
  encoder_sequence_length: int = knob(
      128, "the pretrained encoder's padded length in its subword pieces, "
      '[CLS] and [SEP] included; longer texts are cut',
      parse=flag_types.positive_int)


@dataclasses.dataclass(frozen=True)
class RnnConfig:
  """Arguments of models.rnn.build_rnn_classifier, and the Tuner's ranges."""
  embedding_dim: int = knob(64, 'token embedding width',
                            search=Choice((64, 128, 256)))
  rnn_units: int = knob(64, 'units of the bidirectional recurrent layer',
                        search=Choice((32, 64, 128)))
  cell: str = knob('lstm', 'recurrent cell', choices=('lstm', 'gru'),
                   search=Choice(('lstm', 'gru')))
  dropout: float = knob(0.3, 'dropout rate',
                        search=FloatRange(0.1, 0.5, step=0.1))


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
  """Arguments of models.transformer.build_transformer_classifier, and the
  Tuner's ranges."""
  embedding_dim: int = knob(64, 'token embedding width',
                            search=Choice((64, 128, 256)))
  num_layers: int = knob(2, 'encoder blocks', search=IntRange(1, 3))
  # The Tuner keeps the counts that divide the embedding width.
  num_heads: int = knob(4, 'attention heads', search=Choice((2, 4, 8)))
  intermediate_dim: int = knob(128, 'feed-forward width',
                               search=Choice((128, 256, 512)))
  dropout: float = knob(0.3, 'dropout rate',
                        search=FloatRange(0.1, 0.5, step=0.1))


@dataclasses.dataclass(frozen=True)
class FineTuningConfig:
  """The Transformer as a pretrained encoder (preprocessing's
  `pretrained_encoder`): arguments of
  models.pretrained_encoder.build_pretrained_encoder_classifier, and the
  learning rate that replaces TrainingConfig's for it."""
  dropout: float = knob(0.1, 'dropout rate before the classifier',
                        search=FloatRange(0.0, 0.3, step=0.1))
  # A sentence encoder's [CLS] and pooler were never trained for anything:
  # keras-hub's [CLS] head did not learn on all-MiniLM-L6-v2 in two epochs,
  # the mean of its sequence output (how it was trained) at once.
  head: str = knob(
      'mean_pooling', "the classifier over the encoder: mean_pooling, the "
      'mean of the sequence output over the real tokens; or cls, '
      "keras-hub's head over [CLS], for encoders whose [CLS] was trained",
      choices=ENCODER_HEADS)
  # Fine-tuning takes small steps (BERT: 2e-5 to 5e-5); from scratch is 5e-4.
  learning_rate: float = knob(5e-5, "Adam's peak learning rate when "
                              'fine-tuning', parse=flag_types.positive_float,
                              search=FloatRange(1e-5, 1e-4, log=True))
  # A few epochs over a schedule that ends at 0 (BERT: 2 to 4), rather
  # than early stopping's open end: each epoch costs minutes on a CPU.
  epochs: int = knob(3, 'epochs of fine-tuning',
                     parse=flag_types.positive_int)
  batch_size: int = knob(32, 'examples per replica in a batch',
                         parse=flag_types.positive_int)
  learning_rate_schedule: str = knob(
      'warmup_cosine', 'constant, or a linear warm-up over warmup_epochs '
      'then a cosine decay to 0 by the last epoch',
      choices=LEARNING_RATE_SCHEDULES)
  warmup_epochs: float = knob(0.3, 'epochs of warm-up in warmup_cosine',
                              parse=flag_types.float_in(0.0))
  # LP-FT (Kumar et al. 2022): a new head's first, large gradients move the
  # pretrained features while it is still random; training it first on
  # the frozen encoder keeps more of what they knew about other text.
  head_epochs: int = knob(
      0, 'epochs training only the classifier, the encoder frozen, before '
      'fine-tuning the whole (LP-FT); 0: none', parse=flag_types.non_negative_int)
  # A probe of all-MiniLM-L6-v2's frozen mean-pooled features on
  # Twitter-FNS plateaus at 0.76-0.77 valid accuracy: within 2 epochs at
  # 1e-2, after 10 at 1e-3 (docs/results/model_quality.md, LP-FT).
  head_learning_rate: float = knob(
      1e-2, "Adam's constant learning rate of the head_epochs",
      parse=flag_types.positive_float)
  # With trim_padding, a batch of 32 random headlines costs its longest
  # (about the 97th percentile of lengths); grouped, about their mean.
  group_by_length: bool = knob(
      True, 'batch training examples of similar length together '
      '(shuffled within each length bucket and across buckets), so that '
      'trimmed batches hold little padding; off: batches of any lengths',
      flag='mixed_length_batches', negated=True)
  trim_padding: bool = knob(
      True, 'feed the encoder each batch padded only to its longest text '
      '(models.trim_padding; the same result, at the cost of the pieces '
      'the batch holds); off: the whole encoder_sequence_length, fixed '
      'shapes (a TPU always runs so)', flag='keep_padding', negated=True)


@dataclasses.dataclass(frozen=True)
class DistillationConfig:
  """Students of the fine-tuned encoder (models.distillation): with a
  pretrained encoder as the Transformer, TFX's BulkInferrer writes the
  blessed Transformer's probabilities into the training examples (and into
  PipelineConfig.unlabelled's texts), and an RNN and a small Transformer,
  trained from scratch with `training`'s settings, learn from them (and
  from the labels, as far as `alpha` < 1; the labels always choose the
  early stop and the calibration). Each student is a candidate of its own
  (`<architecture>_student`); the RNN is then trained only as a student.

  Per example, with p the teacher's and q the student's probabilities:
  alpha * T^2 * KL(p_T || q_T) + (1 - alpha) * CE(label, q), the second
  term only where there is a label.
  """
  enabled: bool = knob(
      True, 'no students: with a pretrained encoder, train the RNN on the '
      'labels beside it, as without one', flag='skip_distillation',
      negated=True)
  temperature: float = knob(
      2.0, "softens the teacher's (calibrated) probabilities and the "
      "student's alike before they are compared (T)",
      flag='distillation_temperature', parse=flag_types.positive_float)
  # 1.0, the teacher alone: its probabilities carry what the pretrained
  # encoder reads beyond Twitter-FNS, the labels only Twitter-FNS. Measured:
  # docs/results/model_quality.md, "The students' mix of teacher and labels".
  alpha: float = knob(
      1.0, "weight of the teacher's probabilities in a student's loss; the "
      'labels have the rest', flag='distillation_alpha',
      parse=flag_types.float_in(0.0, 1.0, high_included=True))
  hard_term_mean: str = knob(
      'labelled', "how a student's cross-entropy on the labels is averaged "
      'in a batch', choices=HARD_TERM_MEANS, cli=False)
  max_student_parameters: int = knob(
      3_000_000, 'a student with more parameters is refused', cli=False)
  # Measured: docs/results/model_quality.md, "What a student reads".
  tokens: str = knob(
      'teacher_pieces', "what a student reads: teacher_pieces, the "
      "teacher's WordPiece ids (a word no training text had is still pieces "
      "the student knows), its embedding started from the teacher's token "
      "embeddings projected to the student's width; words, Transform's "
      'vocabulary of the training words', choices=STUDENT_TOKENS,
      flag='student_tokens')


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """Trainer settings shared by both architectures (models.trainer.run_fn)."""
  strategy: str = knob(
      'auto', 'tf.distribute strategy; auto: TPU if --tpu, multi-worker if '
      'TF_CONFIG names a cluster, mirrored over several GPUs or '
      '--cpu_replicas > 1, else one device', choices=STRATEGIES)
  tpu: Optional[str] = knob(
      None, "TPU to train on: a Cloud TPU name, grpc://host:port, or 'local' "
      '(a TPU VM)')
  # `finsent run` splits the CPU at start-up (models.strategy).
  cpu_replicas: int = knob(
      1, 'mirrored: split the CPU into this many logical devices, one '
      'replica each', parse=flag_types.positive_int)
  batch_size: int = knob(
      64, 'examples per replica in a batch (the global batch is this times '
      'the replicas)', parse=flag_types.positive_int)
  learning_rate: float = knob(
      5e-4, "Adam's learning rate for one replica, the peak of a schedule, "
      'when training from scratch', parse=flag_types.positive_float,
      search=FloatRange(1e-4, 3e-3, log=True))
  learning_rate_scaling: str = knob(
      'sqrt', 'how the learning rate follows the global batch over replicas',
      choices=LEARNING_RATE_SCALINGS)
  learning_rate_schedule: str = knob(
      'constant', 'constant, or a linear warm-up over --warmup_epochs then a '
      'cosine decay to 0 by --max_epochs', choices=LEARNING_RATE_SCHEDULES)
  warmup_epochs: float = knob(1.0, 'epochs of warm-up in warmup_cosine',
                              parse=flag_types.float_in(0.0))
  label_smoothing: float = knob(
      0.0, 'share of each target spread over all classes, in [0, 1)',
      parse=flag_types.float_in(0.0, 1.0))
  focal_gamma: float = knob(
      0.0, "focal loss exponent: weighs each class's term of the "
      'cross-entropy by (1 - p)^gamma, p its predicted probability, so '
      'examples already got right count less; 0 is the cross-entropy',
      parse=flag_types.float_in(0.0))
  # Not used by a pretrained encoder, which has its own (docs/models.md).
  word_vectors: Optional[str] = knob(
      None, "pretrained word vectors, a text file in GloVe's format (or "
      "word2vec's or fastText's): the models trained from scratch start "
      'their token embedding from them, at their width (default: a random '
      'start)', metavar='PATH')
  max_epochs: int = knob(12, 'most epochs of a Trainer',
                         parse=flag_types.positive_int)
  # Accuracy by default: loss turns up epochs earlier, as the models grow
  # confident, while accuracy still improves.
  early_stopping_monitor: str = knob(
      'val_sparse_categorical_accuracy', 'held-out metric that stops '
      'training and picks the epoch kept (val_macro_f1 is what the '
      'tournament ranks by)', choices=EARLY_STOPPING_MONITORS)
  early_stopping_patience: int = knob(
      3, 'epochs without improvement before training stops',
      parse=flag_types.positive_int)
  # The eval split is kept for the Evaluator alone.
  validation_fraction: float = knob(
      0.1, 'share of the train split held out for early stopping',
      parse=flag_types.float_in(0.0, 1.0, low_included=False))
  train_steps: Optional[int] = knob(
      None, 'stop each Trainer after this many batches (TFX '
      'TrainArgs.num_steps); default: epochs until early stopping',
      parse=flag_types.positive_int)
  # The examples reach the Trainer in the order of the files it reads, not
  # at random: the topic set's rows sorted by topic, and in each Transform
  # shard the sentiment rows apart from the topic rows. A buffer smaller than
  # the fit share gives batches of a few classes of one kind at a time
  # (docs/results/topics.md); the whole of it, a full shuffle.
  shuffle_buffer_size: Optional[int] = knob(
      None, 'examples in the shuffle buffer of the training batches; '
      'default: every example of the fit share (a full shuffle each epoch, '
      "as Keras's fit shuffles arrays); set it lower for a split larger "
      'than memory', parse=flag_types.positive_int)
  # Chosen by measurement (docs/models.md).
  class_weighting: str = knob('none', 'loss weights against class imbalance',
                              choices=CLASS_WEIGHTINGS)
  # So the monitoring job's thresholds act on calibrated probabilities; the
  # argmax does not change (models.calibration).
  calibration: str = knob(
      'temperature', 'temperature: scale the exported probabilities by a '
      'temperature fitted on held-out examples', choices=CALIBRATIONS)
  profile_steps: Tuple[int, int] = knob(
      (3, 12), 'training steps FIRST LAST (1-based, across epochs) of the '
      'TensorBoard profile in the model_run artifact',
      parse=flag_types.positive_int, metavar=('FIRST', 'LAST'))
  seed: int = knob(
      42, "seed of the weights' initialisation, dropout and the shuffling of "
      'training batches')


@dataclasses.dataclass(frozen=True)
class TuningConfig:
  """The TFX Tuner before each Trainer (models.tuner): a random search of
  the ranges the model's knobs declare (`search`) and the learning rate.

  Off by default, as in TFX's templates: on the Twitter-FNS set each trial
  costs about as much as a Trainer's whole fit.
  """
  enabled: bool = knob(
      False, 'run a TFX Tuner (keras-tuner random search) before each '
      'Trainer, which then trains with the best hyperparameters found',
      flag='enable_tuning')
  max_trials: int = knob(6, 'trials per architecture', flag='tuner_max_trials',
                         parse=flag_types.positive_int)
  # Scored by the Trainer's early_stopping_monitor.
  epochs_per_trial: int = knob(4, 'most epochs of one trial',
                               flag='tuner_epochs_per_trial',
                               parse=flag_types.positive_int)
