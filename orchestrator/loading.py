"""experiments.yaml -> Spec, every error located by file, line and field, all at once.

    experiments.yaml:7: grid.method[1]: 'rotnett' is not one of random, rotnet

Types are strict: a boolean is not an integer and a string is not a number (`epochs: "5"` and
`epochs: true` are errors, not 5 and 1). YAML reads as YAML 1.2 does in two places: `1e-3` is a
number (YAML 1.1 wants `1.0e-3`), and a key given twice in one mapping is an error, not the
last one silently winning. A value too long to read is elided in the message.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from contract.registry import registry_of
from orchestrator.errors import SpecError
from orchestrator.spec import Spec


def load_spec(path: str | Path) -> Spec:
    """Read and validate an experiment file.

    Raises:
        SpecError: the file is missing, is not YAML, or does not fit the schema.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SpecError(f"{path}: cannot read the experiment file: {e.strerror}") from None
    try:
        root = yaml.compose(text, Loader=_Loader)
        data = yaml.load(text, Loader=_Loader)  # noqa: S506  (a safe loader: _Loader is SafeLoader's)
    except RepeatedKey as e:
        where = ".".join(str(p) for p in _path_to(root, e.mapping)) or "(top level)"
        raise SpecError(f"{path}:{e.second.line + 1}: {where}: key {e.key!r} is given twice in one mapping "
                        f"(lines {e.first.line + 1} and {e.second.line + 1}); keep one") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SpecError(f"{where}: not valid YAML: {_elide(str(getattr(e, 'problem', e)))}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return Spec.model_validate(data, context={"base_dir": path.parent})  # strict: contract.base.Frozen
    except ValidationError as e:
        raise SpecError(*(_locate(path, root, err) for err in e.errors())) from None


class RepeatedKey(yaml.YAMLError):
    def __init__(self, key: Any, mapping: yaml.Node, first: yaml.Mark, second: yaml.Mark) -> None:
        super().__init__(f"key {key!r} repeated")
        self.key, self.mapping, self.first, self.second = key, mapping, first, second


class _Loader(yaml.SafeLoader):
    """SafeLoader, with YAML 1.2's floats and no key twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Mark] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, typing.Hashable):
                if key in seen:
                    raise RepeatedKey(key, node, seen[key], key_node.start_mark)
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep)


# Copies of SafeLoader's resolver lists: PyYAML's add_implicit_resolver appends to the lists
# it shares with the parent class.
_Loader.yaml_implicit_resolvers = {k: list(v) for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float", re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"), list("-+0123456789")
)


def _path_to(node: yaml.Node | None, target: yaml.Node, walked: tuple[Any, ...] = ()) -> tuple[Any, ...]:
    """The place (field names, list indices) of the node that starts where `target` does."""
    if node is None or node.start_mark.index == target.start_mark.index and type(node) is type(target):
        return walked
    pairs = ((k.value, v) for k, v in node.value) if isinstance(node, yaml.MappingNode) else (
        enumerate(node.value) if isinstance(node, yaml.SequenceNode) else ())
    for part, child in pairs:
        if child.start_mark.index <= target.start_mark.index < child.end_mark.index:
            return _path_to(child, target, (*walked, part))
    return walked


def located(path: Path, problems: Iterable[tuple[tuple[Any, ...], str]]) -> list[str]:
    """`file:line: field.path: message` for problems found in a valid spec, given as (pydantic
    style loc, message): checks that need the whole spec, such as images against the network."""
    root = yaml.compose(path.read_text(), Loader=_Loader)
    return [_locate(path, root, {"loc": loc, "type": "value_error", "msg": msg})
            for loc, msg in problems]


def _locate(path: Path, root: yaml.Node | None, err: Any) -> str:
    """`file:line: field.path: message`, walking the YAML nodes along pydantic's error loc."""
    node, shown, walked = root, "", []
    for part in err["loc"]:
        child = _child(node, part)
        if child is None and not (err["type"] == "extra_forbidden" and part == err["loc"][-1]):
            continue  # a union tag or validator name in the loc, not a place in the file
        shown += f"[{part}]" if isinstance(part, int) else (f".{part}" if shown else str(part))
        walked.append(part)
        node = child or node
    line = f":{node.start_mark.line + 1}" if node is not None else ""
    return f"{path}{line}: {shown or '(top level)'}: {_elide(_message(err, walked))}"


def _child(node: yaml.Node | None, part: Any) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode) and isinstance(part, str):
        for key, value in node.value:
            if key.value == part:
                return value
    if isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
        return node.value[part]
    return None


def _message(err: Any, walked: list[Any]) -> str:
    kind, ctx, value = err["type"], err.get("ctx", {}), err.get("input")
    if kind == "extra_forbidden":
        allowed = _allowed_keys(list(err["loc"][:-1]))
        guess = difflib.get_close_matches(str(walked[-1]), allowed, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        return f"unknown key {walked[-1]!r}{hint}; allowed: {', '.join(allowed)}"
    if kind == "union_tag_invalid":
        return f"{ctx['tag']!r} is not one of {_choices(ctx['expected_tags'])}"
    if kind == "literal_error":
        return f"{value!r} is not one of {_choices(ctx['expected'])}"
    if kind == "missing":
        return "required, but missing"
    message = err["msg"].removeprefix("Value error, ")
    return message if kind == "value_error" else f"{value!r}: {message}"


LONG = 80  # characters of a quoted value shown in a message before it is elided


def _elide(message: str) -> str:
    """Quoted values longer than LONG characters cut to their start and size: an enormous
    value is named, not echoed (`'xxxxxxxx...' (5.0 MB)`)."""

    def cut(m: re.Match[str]) -> str:
        return f"{m.group(1)}{m.group(2)[:LONG // 2]}...{m.group(1)} ({_size(len(m.group(2)))})"

    message = re.sub(rf"""(['"])([^'"]{{{LONG},}})\1""", cut, message)
    return message if len(message) <= 20 * LONG else message[: 20 * LONG] + f"... ({_size(len(message))})"


def _size(chars: int) -> str:
    return (
        f"{chars / 2**20:.1f} MB"
        if chars >= 2**20
        else f"{chars / 2**10:.1f} kB"
        if chars >= 2**10
        else f"{chars} characters"
    )


def _choices(text: str) -> str:
    """pydantic's "'a', 'b' or 'c'" -> "a, b, c"."""
    return text.replace("'", "").replace(" or ", ", ")


def _allowed_keys(loc: list[Any]) -> list[str]:
    """The keys the model found at `loc` in the Spec schema takes: its fields, or what its
    `allowed_keys` says (a model that takes keys declared elsewhere: `spec.Exclude`)."""
    model: Any = Spec
    for part in loc:
        model = _unwrap(model, part)
    if not _is_model(model):
        return []
    return model.allowed_keys() if hasattr(model, "allowed_keys") else list(model.model_fields)


def _unwrap(annotation: Any, part: Any) -> Any:
    """One step along a loc: into a model's field, a list's item, a union's model member."""
    if _is_model(annotation):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field else annotation
    registry = registry_of(annotation)
    if registry is not None:  # a registered name in the loc, as a union's tag
        return registry.settings(part) if part in registry else annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _unwrap(args[0], part)
    if origin in (list, tuple) and isinstance(part, int):
        return args[0]
    if origin in (typing.Union, types.UnionType):
        members = [typing.get_args(a)[0] if typing.get_origin(a) is typing.Annotated else a for a in args]
        models = [a for a in members if _is_model(a)]
        named = [m for m in models if getattr(m.model_fields.get("name"), "default", None) == part]
        return (named or models or [annotation])[0]
    return annotation


def _is_model(x: Any) -> bool:
    return isinstance(x, type) and issubclass(x, BaseModel)
