"""Text from a store (or any other input), made inert for where it goes: a page or a terminal.

A page template's output is read twice: by Python-Markdown (and its extensions: attr_list, md_in_html, tables,
admonition, details, toc) and then by the browser. HTML-escaping alone leaves Markdown's own syntax alive:
``[x](javascript:...)`` becomes a link, ``{: onmouseover=... }`` an attribute. So every value a template prints
is HTML-escaped AND has each character of Markdown's inline syntax written as a numeric character reference
(``[`` -> ``&#91;``), and so has its leading block syntax (``- ``, ``1.``, an indent): Markdown sees no syntax
at all, the browser shows the same characters. Newlines and tabs become references too, so a value never
starts a Markdown block of its own, and C0 controls (Markdown keeps its placeholders in \\x02..\\x03) are
dropped. URLs the generator made (layout.Url, percent-encoded) are printed as they are.

A terminal reads control characters as commands (ESC sequences, BEL, CR overwriting a line, bidi overrides
that reorder what is shown): `printable` writes them as visible escapes.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

from markupsafe import Markup

#: every character Markdown or one of its extensions reads as inline syntax (links, images, emphasis, code,
#: attr_list, tables, autolinks, entities, raw HTML, pymdownx's tilde/caret/arithmatex), and the line breaks
#: that would let a value start a block of its own; URLs the generator made are layout.Url
_SYNTAX = "\\`*_{}[]()#!<>|~:^$&\"'\t\n\r"
_PAGE = {ord(c): f"&#{ord(c)};" for c in _SYNTAX}
_PAGE.update({c: None for c in range(32) if chr(c) not in "\t\n\r"})
_PAGE[0x7F] = None
#: block syntax acts at the start of a line (`-`, `+`, `=`, `1.`, `!!!`, `???`, an indent): the start of a
#: value, in case a template puts one there
_LEADING = re.compile(r"^(?:[ \-+=.?!]+|\d+[.)])")


def _lead(match: re.Match[str]) -> str:
    return "".join(c if c.isdigit() else f"&#{ord(c)};" for c in match.group())


def inert(value: Any) -> Markup:
    """`value` as text for a Markdown page: no HTML, no Markdown, no control characters (see the module doc)."""
    if hasattr(value, "__html__"):  # a macro's output (Markup), or a URL the generator made (layout.Url)
        return Markup(value.__html__())
    return Markup(_LEADING.sub(_lead, str(value).translate(_PAGE), count=1))


def finalize(value: Any) -> Any:
    """Jinja's `finalize` for every page template: each printed value goes through `inert`."""
    return inert(value)


def join(values: Iterable[Any], separator: str = "") -> Markup:
    """Jinja's `join` for page templates (the built-in one only HTML-escapes its items)."""
    return inert(separator).join(inert(v) for v in values)


#: C0, DEL, C1, and the Unicode controls that reorder or hide text (bidi embeddings, overrides, isolates,
#: marks; line and paragraph separators)
_TERMINAL = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")


def printable(value: Any, *, newlines: bool = False) -> str:
    """`value` safe to print: control characters as visible escapes (``\\x1b``, ``\\u202e``). `newlines` keeps
    line breaks (a multi-line message the program wrote itself)."""
    def escaped(match: re.Match[str]) -> str:
        char = match.group()
        if newlines and char == "\n":
            return char
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return _TERMINAL.sub(escaped, str(value))
