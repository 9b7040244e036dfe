"""Loads an exported finsent SavedModel the way a server would, and predicts.

  python tests/load_saved_model.py SAVED_MODEL_DIR TEXT [TEXT ...]

Imports only tensorflow and tensorflow_text (for the tokenizer op), calls
the serving_default signature on the texts and the serving_examples
signature on the same texts as tf.Examples, and prints one JSON line:
{"labels": [...], "probabilities": [[...]], "examples_labels": [...],
 "signatures": [...], "outputs": [...], "modules": [...]} where outputs
names serving_default's outputs and modules lists any project or training
package that got imported (there should be none); with a topic head also
"topics" and "topic_probabilities"; and "bulk_inference", that signature's
outputs on the examples, where the export has it.
"""

import json
import sys

import tensorflow as tf
import tensorflow_text  # noqa: F401  registers the tokenizer ops


def main(saved_model_dir, texts):
  loaded = tf.saved_model.load(saved_model_dir)
  serve = loaded.signatures['serving_default']
  outputs = serve(text=tf.constant(texts))
  examples = [tf.train.Example(features=tf.train.Features(feature={
      'text': tf.train.Feature(bytes_list=tf.train.BytesList(
          value=[t.encode('utf-8')]))})).SerializeToString() for t in texts]
  from_examples = loaded.signatures['serving_examples'](
      examples=tf.constant(examples))
  unexpected = sorted(m for m in sys.modules if m.split('.')[0] in (
      'tfx', 'tensorflow_transform', 'keras_hub', 'models', 'pipeline',
      'components', 'apache_beam'))
  answer = {
      'labels': [b.decode() for b in outputs['label'].numpy()],
      'probabilities': outputs['probabilities'].numpy().tolist(),
      'examples_labels': [b.decode() for b in from_examples['label'].numpy()],
      'signatures': sorted(loaded.signatures.keys()),
      'outputs': sorted(outputs),
      'modules': unexpected,
  }
  if 'bulk_inference' in loaded.signatures:
    answer['bulk_inference'] = {
        key: value.numpy().tolist() for key, value in
        loaded.signatures['bulk_inference'](
            examples=tf.constant(examples)).items()}
  if 'topic' in outputs:
    answer['topics'] = [b.decode() for b in outputs['topic'].numpy()]
    answer['topic_probabilities'] = (
        outputs['topic_probabilities'].numpy().tolist())
  print(json.dumps(answer))


if __name__ == '__main__':
  main(sys.argv[1], sys.argv[2:])
