"""`finsent predict`: the sentiment of headlines, from a served model, and
their topic where the model has a topic head.

  finsent predict "Acme shares plunge after profit warning" ...
  finsent predict --protocol grpc --server HOST:8500 - < headlines.txt

Asks TF Serving or `finsent serve` through serving.client.SentimentClient,
REST or gRPC, and prints a table (or, with --json, one JSON object per
line).
"""

import argparse
import dataclasses
import json
import sys
from typing import List, Optional

from finsent.configs.features import LABELS
from finsent.configs.features import TOPICS
from finsent.configs.serving import DEFAULT_PORTS
from finsent.configs.serving import PRODUCTION_MODEL_NAME

# The table's topic column: the longest topic name and its probability.
TOPIC_COLUMN = max(map(len, TOPICS)) + len(' 0.000')


def build_parser(prog: str = 'finsent predict') -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=prog, description='Sentiment of headlines from a served model '
      '(TF Serving or finsent serve).')
  parser.add_argument('texts', nargs='+', metavar='TEXT',
                      help='headlines; "-" reads one per line from stdin')
  parser.add_argument('--server', help='host:port (default: 127.0.0.1:'
                      f'{DEFAULT_PORTS["rest"]} for REST, 127.0.0.1:'
                      f'{DEFAULT_PORTS["grpc"]} for gRPC)')
  parser.add_argument('--protocol', choices=sorted(DEFAULT_PORTS),
                      default='rest')
  parser.add_argument('--model_name', default=PRODUCTION_MODEL_NAME)
  pinned = parser.add_mutually_exclusive_group()
  pinned.add_argument('--model_version', type=int)
  pinned.add_argument('--model_version_label')
  parser.add_argument('--timeout_seconds', type=float, default=10.0)
  parser.add_argument('--retries', type=int, default=3)
  parser.add_argument('--max_batch_size', type=int, default=64)
  parser.add_argument('--json', action='store_true',
                      help='one JSON object per line instead of a table')
  return parser


def main(argv: Optional[List[str]] = None,
         prog: str = 'finsent predict') -> int:
  args = build_parser(prog).parse_args(argv)
  texts = [line.rstrip('\n') for line in sys.stdin] if args.texts == ['-'] \
      else args.texts
  # Imported once the flags parse, as every command's library code is (the
  # client itself loads TensorFlow only for gRPC).
  from finsent.serving import client as client_lib  # pylint: disable=g-import-not-at-top
  try:
    with client_lib.SentimentClient(
        args.server or f'127.0.0.1:{DEFAULT_PORTS[args.protocol]}',
        args.model_name, args.protocol, args.model_version,
        args.model_version_label, args.timeout_seconds, args.retries,
        max_batch_size=args.max_batch_size) as client:
      predictions = client.predict(texts)
  except (ValueError, client_lib.ServingClientError) as e:
    print(f'{prog}: error: {e}', file=sys.stderr)
    return 2
  for p in predictions:
    if args.json:
      row = dataclasses.asdict(p)
      if p.topic is None:  # a sentiment-only model
        del row['topic'], row['topic_probabilities']
      print(json.dumps(row))
    else:
      scores = '  '.join(f'{label} {p.probabilities[label]:.3f}'
                         for label in LABELS)
      topic = ('' if p.topic is None else
               f'{p.topic} {p.topic_probabilities[p.topic]:.3f}'.ljust(
                   TOPIC_COLUMN) + '  ')
      print(f'{p.label:<8}  {scores}  {topic}{p.text}')
  return 0
