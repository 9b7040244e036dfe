"""Which tickers a headline is about: $cashtags and company-name aliases.

  tickers = TickerExtractor.from_csv(configs.TICKER_ALIASES)
  tickers('Apple and $MSFT rally')  ->  ('AAPL', 'MSFT')

A cashtag is `$` and 1-5 letters, with an optional class suffix ($BRK.B);
it is upper-cased. An alias is a company name matched as whole words,
case-insensitively (`Apple's` matches `Apple`). The alias list is a CSV
`name,ticker` (see data/ticker_aliases.csv), given by --ticker_aliases.
"""

import csv
import re
from typing import Dict, Tuple

CASHTAG = re.compile(r'(?<![\w$])\$([A-Za-z]{1,5}(?:\.[A-Za-z]{1,2})?)\b')
TICKER = re.compile(r'[A-Z]{1,5}(?:\.[A-Z]{1,2})?')


class AliasError(ValueError):
  """An alias list that cannot be used; says which line."""


class TickerExtractor:
  """Callable: text -> the sorted tickers it names."""

  def __init__(self, aliases: Dict[str, str]):
    """`aliases` maps a company name to its ticker."""
    self._aliases = {name.lower(): ticker for name, ticker in aliases.items()}
    # Longest names first, so 'Bank of America' wins over 'America'.
    names = sorted(self._aliases, key=len, reverse=True)
    self._alias_pattern = re.compile(
        r'\b(' + '|'.join(re.escape(n) for n in names) + r')\b',
        re.IGNORECASE) if names else None

  @classmethod
  def from_csv(cls, path: str) -> 'TickerExtractor':
    aliases = {}
    with open(path, newline='', encoding='utf-8') as f:
      rows = csv.reader(f)
      if next(rows, None) != ['name', 'ticker']:
        raise AliasError(f'{path}:1: the header must be name,ticker')
      for row in rows:
        where = f'{path}:{rows.line_num}'
        if len(row) != 2 or not row[0].strip():
          raise AliasError(f'{where}: expected name,ticker, got {row}')
        name, ticker = row[0].strip(), row[1].strip()
        if not TICKER.fullmatch(ticker):
          raise AliasError(f'{where}: {ticker!r} is not a ticker (1-5 '
                           'capital letters, optional .X class)')
        if aliases.setdefault(name, ticker) != ticker:
          raise AliasError(f'{where}: {name!r} is already {aliases[name]}')
    return cls(aliases)

  def __call__(self, text: str) -> Tuple[str, ...]:
    tickers = {m.group(1).upper() for m in CASHTAG.finditer(text)}
    if self._alias_pattern:
      tickers.update(self._aliases[m.group(1).lower()]
                     for m in self._alias_pattern.finditer(text))
    return tuple(sorted(tickers))
