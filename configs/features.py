"""Names of the labels and of raw and transformed features, shared by the
readers, Transform, Trainer, export, serving and monitoring."""

# The canonical labels, in the order of the models' outputs.
LABELS = ('negative', 'neutral', 'positive')

# The topics of the Twitter Financial News Topic set, in the order of its
# ids (0 Analyst Update ... 19 Stock Movement; its SOURCE.txt).
TOPICS = ('Analyst Update', 'Fed | Central Banks', 'Company | Product News',
          'Treasuries | Corporate Debt', 'Dividend', 'Earnings',
          'Energy | Oil', 'Financials', 'Currencies', 'General News | Opinion',
          'Gold | Metals | Materials', 'IPO', 'Legal | Regulation',
          'M&A | Investments', 'Macro', 'Markets', 'Politics',
          'Personnel Change', 'Stock Commentary', 'Stock Movement')

# A model's outputs when it has a topic head beside the sentiment one
# (models.heads); a sentiment-only model has one, unnamed.
SENTIMENT_HEAD = 'sentiment'
TOPIC_HEAD = 'topic'

# The serving signature's outputs (models.export): the TF Serving contract
# that the client, `finsent predict` and the monitor read.
LABEL_OUTPUT = 'label'
PROBABILITIES_OUTPUT = 'probabilities'
TOPIC_OUTPUT = 'topic'
TOPIC_PROBABILITIES_OUTPUT = 'topic_probabilities'

TEXT_KEY = 'text'
LABEL_KEY = 'label'
TOPIC_KEY = 'topic'
SOURCE_KEY = 'source'
# Derived by TextExampleGen: the text's word count, bucketed.
LENGTH_BUCKET_KEY = 'length_bucket'
TOKEN_IDS_KEY = 'token_ids'
LABEL_ID_KEY = 'label_id'
TOPIC_ID_KEY = 'topic_id'
# Vocabulary file written by Transform; its ids are shifted by one so that 0
# is padding (Keras `mask_zero`).
TOKEN_VOCABULARY_NAME = 'tokens'
PADDING_ID = 0
# The model architectures trained side by side (models.trainer.MODEL_BUILDERS).
ARCHITECTURES = ('rnn', 'transformer')
# A student: an architecture trained from scratch on a teacher's
# probabilities (models.distillation), named `<architecture>_student`.
STUDENT_SUFFIX = '_student'
# Every candidate the tournament may weigh: the architectures trained on
# the labels (the Transformer, with a pretrained encoder, is the teacher)
# and their students.
CANDIDATES = ARCHITECTURES + tuple(f'{a}{STUDENT_SUFFIX}'
                                   for a in ARCHITECTURES)
# The float features BulkInferrer adds to each example: the teacher's
# probabilities, in LABELS order, and with a topic head its topic
# probabilities, in TOPICS order.
TEACHER_PROBABILITIES_KEY = 'teacher_probabilities'
TEACHER_TOPIC_PROBABILITIES_KEY = 'teacher_topic_probabilities'
# The split of the unlabelled texts (--unlabelled), beside train and eval.
UNLABELLED_SPLIT = 'unlabelled'


def candidate_architecture(candidate: str) -> str:
  """The architecture a candidate's model is built as: 'rnn_student' ->
  'rnn'."""
  if candidate not in CANDIDATES:
    raise ValueError(f'{candidate!r} is not a candidate; those are '
                     f'{", ".join(CANDIDATES)}')
  return candidate.removesuffix(STUDENT_SUFFIX)

# Upper bounds (words) of the text length buckets; longer texts go in the
# last, open bucket. The schema (data/schema/schema.pbtxt) lists the names.
LENGTH_BUCKET_BOUNDS = (8, 16, 32)


def length_bucket(text: str) -> str:
  """The bucket of `text`'s whitespace-separated word count, e.g. '9-16'.

  '0' for a text without words, which the schema's domain leaves out: such
  examples (from a producer other than the readers, which refuse them)
  are anomalies.
  """
  words = len(text.split())
  if not words:
    return '0'
  lower = 1
  for upper in LENGTH_BUCKET_BOUNDS:
    if words <= upper:
      return f'{lower}-{upper}'
    lower = upper + 1
  return f'{lower}+'


__all__ = ['LABELS', 'TOPICS', 'SENTIMENT_HEAD', 'TOPIC_HEAD',
           'LABEL_OUTPUT', 'PROBABILITIES_OUTPUT', 'TOPIC_OUTPUT',
           'TOPIC_PROBABILITIES_OUTPUT', 'TEXT_KEY', 'LABEL_KEY', 'TOPIC_KEY',
           'SOURCE_KEY', 'LENGTH_BUCKET_KEY',
           'TOKEN_IDS_KEY', 'LABEL_ID_KEY', 'TOPIC_ID_KEY',
           'TOKEN_VOCABULARY_NAME', 'PADDING_ID', 'ARCHITECTURES',
           'STUDENT_SUFFIX', 'CANDIDATES', 'TEACHER_PROBABILITIES_KEY',
           'TEACHER_TOPIC_PROBABILITIES_KEY',
           'UNLABELLED_SPLIT', 'candidate_architecture',
           'LENGTH_BUCKET_BOUNDS', 'length_bucket']
