"""YAML from users (flows.yaml, `--set` values), read with bounds: size, expanded size, duplicate keys.

* Only a regular file is read (never a FIFO, a device, /dev/zero: those would block or never end), and only
  up to `MAX_BYTES` (a 2 GB sparse file is refused by its size, before a byte of it is read).
* Aliases are allowed (a shared `overrides:` block is a fair use), but the document they expand into is
  counted while composing, before anything is built: an alias bomb ("billion laughs") that would expand to
  billions of nodes, wherever it sits, is refused in one line instead of exhausting memory later in a
  validator or in an error message's repr. A recursive alias (`&a [*a]`) is refused too.
* A key given twice in one mapping (two jobs of the same name, `steps:` twice in a job) is an error, not
  "the last one wins" in silence. Merge keys (`<<: *base`) may still be overridden, as YAML intends.

Errors are `yaml.YAMLError`s with the line of the problem, which jobs.py turns into its one-line message.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

MAX_BYTES = 1 << 20  # a flows.yaml of every layer and channel of a large model is ~100 kB
MAX_NODES = 200_000  # values of the document with every alias expanded (a legit one has a few hundred)


class TooLarge(yaml.YAMLError):
    """The document (bytes or expanded nodes) is over its bound."""


def read_text(path: Path, limit: int = MAX_BYTES) -> str:
    """A regular file's text, at most `limit` bytes; OSError for a missing file or one that is not regular
    (errno EINVAL with a readable strerror), TooLarge above the cap, UnicodeDecodeError when not UTF-8."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)  # a FIFO opens at once (no writer needed) and is refused
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "is a folder", str(path))
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "not a regular file, but a FIFO, a device or a socket", str(path))
        if info.st_size > limit:
            raise TooLarge(f"is {info.st_size:,} bytes, more than the {limit:,} a flows.yaml may have")
        data = handle.read(limit + 1)
    if len(data) > limit:  # a file that grew, or one whose size the file system does not tell (/proc)
        raise TooLarge(f"is more than the {limit:,} bytes a flows.yaml may have")
    return data.decode("utf-8")


def expanded_size(root: Node, limit: int = MAX_NODES) -> int:
    """Nodes of the document with every alias expanded (a shared node counts each time it is used), without
    expanding anything: sizes are summed bottom-up once per distinct node. TooLarge above `limit`,
    ConstructorError for a node that contains itself."""
    sizes: dict[int, int] = {}
    open_: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        kids = _children(node)
        if children_done:
            open_.discard(key)
            size = 1 + sum(sizes[id(kid)] for kid in kids)
            if size > limit:
                raise TooLarge(f"expands to more than {limit:,} values (aliases: *name)")
            sizes[key] = size
            continue
        if key in open_:
            raise ConstructorError(None, None, "an alias refers to a value that contains it", node.start_mark)
        open_.add(key)
        stack.append((node, True))
        for kid in kids:
            if id(kid) in open_:
                raise ConstructorError(None, None, "an alias refers to a value that contains it", kid.start_mark)
            if id(kid) not in sizes:
                stack.append((kid, False))
    return sizes[id(root)]


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [part for pair in node.value for part in pair]
    return []


#: libyaml's parser when PyYAML has it: about four times faster, and it bounds nesting depth itself
_BASE = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class BoundedLoader(_BASE):  # type: ignore[misc, valid-type]
    """A safe loader that bounds the expanded document and refuses duplicate keys."""

    def get_single_node(self) -> Node | None:
        node = super().get_single_node()
        if node is not None:
            expanded_size(node)
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, ScalarNode):
                    continue
                key = self.construct_object(key_node)
                try:
                    if key in seen:
                        raise ConstructorError("while reading a mapping", node.start_mark,
                                               f"found the key {_shown(key)} twice (line {seen[key].line + 1} "
                                               f"and line {key_node.start_mark.line + 1})", key_node.start_mark)
                    seen[key] = key_node.start_mark
                except TypeError:  # unhashable: SafeConstructor says so below
                    pass
        return super().construct_mapping(node, deep=deep)


def _shown(key: Any) -> str:
    from .terminal import short

    return short(key, 60)


def loads(text: str) -> Any:
    """One YAML document, bounded (see the module's docstring)."""
    try:
        return yaml.load(text, Loader=BoundedLoader)  # noqa: S506 - a SafeLoader subclass
    except (ValueError, OverflowError) as error:  # a scalar PyYAML cannot convert (an int of 100,000 digits)
        message = str(error).split(";")[0].strip()[:120]
        raise ConstructorError(None, None, f"a value that cannot be read: {message}", None) from None


def load_file(path: Path, limit: int = MAX_BYTES) -> Any:
    return loads(read_text(path, limit))
