"""Text from input, made safe to print on a terminal: one line, no control sequences, bounded length.

A store path, a file name, a job's field or an error message can carry ESC sequences (colours, cursor moves,
window titles), BEL, CR (which overwrites the line a user reads), C1 controls and bidi overrides (which
reorder what is shown). Every character Python does not call printable is written as its escape
(`\\x1b`, `\\u202e`), so what the terminal shows is what the input held. Kept here, in the pipeline, so the
command line depends on nothing else for it.
"""

from __future__ import annotations

import reprlib

LIMIT = 2000  # characters of one printed line at most; the rest is cut with a note of how much


def printable(text: object, limit: int | None = LIMIT) -> str:
    """`text` as one printable line: every non-printable character escaped, at most `limit` characters."""
    text = text if isinstance(text, str) else str(text)
    if limit is not None and len(text) > 4 * limit:  # never escape megabytes only to cut them
        text = text[: 4 * limit]
    shown = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    if limit is not None and len(shown) > limit:
        shown = shown[: limit - 3] + "..."
    return shown


_REPR = reprlib.Repr()
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 40
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4


def short(value: object, limit: int = 60) -> str:
    """A bounded repr of any value (a YAML alias bomb, a list of a million items) for an error message: its
    cost is bounded too, as reprlib looks at a few items of a few levels only."""
    text = printable(_REPR.repr(value), limit=None)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def echo(text: object, file=None) -> None:
    """print() a line made of input: escaped and bounded."""
    print(printable(text), file=file)
