"""Names of raw and transformed features, shared by Transform, Trainer and export."""

from data.loaders import LABELS

TEXT_KEY = 'text'
LABEL_KEY = 'label'
SOURCE_KEY = 'source'
# Derived by TextExampleGen: the text's word count, bucketed.
LENGTH_BUCKET_KEY = 'length_bucket'
TOKEN_IDS_KEY = 'token_ids'
LABEL_ID_KEY = 'label_id'
# Vocabulary file written by Transform; its ids are shifted by one so that 0
# is padding (Keras `mask_zero`).
TOKEN_VOCABULARY_NAME = 'tokens'
PADDING_ID = 0
# The model architectures trained side by side (models.trainer.MODEL_BUILDERS).
ARCHITECTURES = ('rnn', 'transformer')

__all__ = ['LABELS', 'TEXT_KEY', 'LABEL_KEY', 'SOURCE_KEY', 'LENGTH_BUCKET_KEY',
           'TOKEN_IDS_KEY', 'LABEL_ID_KEY',
           'TOKEN_VOCABULARY_NAME', 'PADDING_ID', 'ARCHITECTURES']
