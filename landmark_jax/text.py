"""Text from users' files made safe where it goes: a spreadsheet cell (formula injection,
OWASP's "CSV injection") and a terminal (escape sequences). docs/decisions.md, "Spreadsheet
files (issue 33)", says why each rule is what it is."""

from __future__ import annotations

import re

# A spreadsheet reads a cell starting with one of these as a formula (TAB and CR too: some
# strip them first).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# What a spreadsheet reads as a number, sign included: `-33.8` is a longitude, not a formula.
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
# C0 controls, DEL and C1 controls: ESC (0x1b) and CSI (0x9b) start terminal sequences, and
# a TAB or a newline would break the one-line-per-photo output.
_CONTROLS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


def _needs_quote(text: str) -> bool:
  # Leading quotes counted through, so that a text that already starts with `'=` gets one
  # more and `unquote_cell` gives every text back exactly.
  core = text.lstrip("'")
  return core[:1] in FORMULA_STARTS and not _NUMBER.fullmatch(core)


def spreadsheet_cell(value):
  """`value` as a CSV cell a spreadsheet shows as text: a text that would start a formula
  (``=HYPERLINK(…)``, ``+1``, ``-x``, ``@SUM``) gets a leading ``'``; numbers (``-33.8``)
  and anything not a `str` are returned as they are."""
  if isinstance(value, str) and _needs_quote(value):
    return "'" + value
  return value


def spreadsheet_row(values) -> list:
  """`spreadsheet_cell` of each value: a row for `csv.writer`."""
  return [spreadsheet_cell(value) for value in values]


def unquote_cell(cell: str) -> str:
  """The text `spreadsheet_cell` was given: its ``'`` removed where it added one."""
  if cell[:1] == "'" and _needs_quote(cell[1:]):
    return cell[1:]
  return cell


def printable(text) -> str:
  """`str(text)` with control characters (ESC, CSI, BEL, newlines, TAB) written as ``\\x1b``:
  a name from a user's CSV printed on a terminal cannot move the cursor, retitle the
  window or fake another line."""
  return str(text).translate(_CONTROLS)
