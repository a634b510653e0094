"""YAML as a user writes it by hand: PyYAML's safe loader, minus its two silent traps.

- A key given twice in one mapping (``models:`` twice) is an error naming both lines; PyYAML keeps
  the last one without a word.
- Aliases may not expand to more than ``MAX_VALUES`` values, nor refer to themselves. A 1 KB file of
  nested aliases (a "billion laughs" bomb) is a few nodes to the parser but billions of values to
  any code that walks the result (``str()``, ``dataclasses.asdict``, a recipe hash): refused before
  anything walks it. Ordinary anchors (``recipe: &base {...}`` reused per model) stay allowed.

Every error is a ``yaml.YAMLError`` with a ``problem_mark`` where there is a place to name, so a
caller's "not valid YAML at line L, column C: ..." message covers these too.
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.constructor import ConstructorError

# Values (scalars, lists, mappings) a document may expand to: a study file or a run's config.yaml
# holds a few hundred; a long hand-written study a few thousand.
MAX_VALUES = 100_000
_MERGE_TAG = "tag:yaml.org,2002:merge"


class _Checks:
    """Mixed into a PyYAML loader: the expansion check on the composed graph, the duplicate-key check
    on every mapping as it is constructed."""

    def get_single_data(self) -> Any:
        node = self.get_single_node()  # type: ignore[attr-defined]
        if node is None:
            return None
        _check_expansion(node)
        return self.construct_document(node)  # type: ignore[attr-defined]

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)  # type: ignore[attr-defined]
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: PyYAML's own error says so below
                    continue
                if first is not None:
                    raise ConstructorError(
                        None,
                        None,
                        f"found duplicate key {key!r} (first at line {first.start_mark.line + 1}); "
                        "each key may appear once in a mapping",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)  # type: ignore[misc]


class StrictSafeLoader(_Checks, yaml.SafeLoader):
    """``yaml.SafeLoader`` with the duplicate-key and alias-expansion checks."""


# the C parser where PyYAML was built with libyaml (60 run configs in milliseconds), else the Python one
_CBase = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class FastStrictSafeLoader(_Checks, _CBase):  # type: ignore[misc, valid-type]
    """``yaml.CSafeLoader`` (when available) with the same checks."""


class AliasExpansionError(yaml.YAMLError):
    """A document whose aliases expand beyond ``MAX_VALUES`` values, or into themselves."""

    def __init__(self, message: str, mark: yaml.Mark | None) -> None:
        super().__init__(message)
        self.problem = message
        self.problem_mark = mark

    def __str__(self) -> str:
        where = f" at line {self.problem_mark.line + 1}" if self.problem_mark is not None else ""
        return f"{self.problem}{where}"


def _check_expansion(root: yaml.Node) -> None:
    """Count the values ``root`` expands to (an alias counts its target again, as code that walks the
    result sees it), stopping at ``MAX_VALUES``; a node that contains itself is refused.

    Memoised per node, so the count costs one visit per distinct node however deep the aliases nest.
    """
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    # iterative post-order walk: a deep document must not hit Python's recursion limit
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if key in sizes:
            continue
        children = _children(node)
        if not children_done:
            if key in open_nodes:
                continue
            open_nodes.add(key)
            stack.append((node, True))
            for child in children:
                if id(child) in open_nodes and id(child) not in sizes:
                    raise AliasExpansionError(
                        "an alias refers to a value that contains it (a recursive anchor); "
                        "expected a definition without cycles",
                        child.start_mark,
                    )
                if id(child) not in sizes:
                    stack.append((child, False))
            continue
        total = 1 + sum(sizes[id(c)] for c in children)
        open_nodes.discard(key)
        sizes[key] = total
        if total > MAX_VALUES:
            raise AliasExpansionError(
                f"it holds more than {MAX_VALUES:,} values once its aliases (*name) are expanded "
                "(an alias bomb?); expected a definition of ordinary size",
                node.start_mark,
            )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def load_yaml(text: str | bytes, fast: bool = False) -> Any:
    """Parse one YAML document with the checks above.

    Args:
        fast: use libyaml's C parser when PyYAML has it (reading many run configs).

    Raises:
        yaml.YAMLError: malformed YAML, a duplicate key, or aliases that expand too far.
    """
    try:
        return yaml.load(text, Loader=FastStrictSafeLoader if fast else StrictSafeLoader)  # noqa: S506 - safe loaders
    except RecursionError:  # PyYAML composes nested collections recursively
        deep = "it nests lists or mappings thousands of levels deep; expected an ordinary definition"
        raise yaml.YAMLError(deep) from None
