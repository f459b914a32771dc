"""Reading a space file: YAML through a safe loader that refuses repeated keys, with errors that say where."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from advisor.search.space._base import closest, fail

#: The keys a space file may have at its top level.
TOP_KEYS = ("strategy", "params", "strategies", "description")


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key repeated in one mapping (PyYAML keeps the last silently)."""

    def construct_mapping(self, node, deep=False):  # noqa: D102 - PyYAML hook
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            try:
                if key in seen:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                            key_node.start_mark)
                seen.add(key)
            except TypeError:  # unhashable key: let PyYAML report it
                break
        return super().construct_mapping(node, deep=deep)


def read(path: Path, src: str) -> Any:
    """The YAML mapping in ``path`` (``src`` names it in messages); AdvisorError for any problem."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fail(src, "", "was not found", "check the path; the shipped spaces are in search_spaces/") from None
    except UnicodeDecodeError:
        raise fail(src, "", "is not UTF-8 text", "save the file as UTF-8 YAML") from None
    except OSError as e:
        raise fail(src, "", f"cannot be read ({e.strerror or e})", "pass a readable YAML file") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: plain data only
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise fail(src, "", f"is not valid YAML{at}: {problem}",
                   "fix the syntax there (indent with spaces, write key: value)") from None
    if data is None:
        raise fail(src, "", "is empty", "write strategy: and params: (see search_spaces/README.md)")
    if not isinstance(data, dict):
        raise fail(src, "", f"must be a mapping at the top level, got {type(data).__name__}",
                   "start with strategy: NAME and params:, or strategies:")
    for key in data:
        if key not in TOP_KEYS:
            raise fail(src, str(key), "is not a top-level key",
                       f"{closest(key, TOP_KEYS)}use strategy and params, or strategies (plus description)")
    return data
