"""experiments.yaml -> Spec, every error located by file, line and field, all at once.

    experiments.yaml:7: grid.method[1]: 'rotnett' is not one of random, rotnet
"""

from __future__ import annotations

import difflib
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
        data = yaml.safe_load(text)
        root = yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise SpecError(f"{where}: not valid YAML: {getattr(e, 'problem', e)}") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: expected a mapping of settings, got {type(data).__name__}")
    try:
        return Spec.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as e:
        raise SpecError(*(_locate(path, root, err) for err in e.errors())) from None


def located(path: Path, problems: Iterable[tuple[tuple[Any, ...], str]]) -> list[str]:
    """`file:line: field.path: message` for problems found in a valid spec, given as (pydantic
    style loc, message): checks that need the whole spec, such as images against the network."""
    root = yaml.compose(path.read_text())
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
    return f"{path}{line}: {shown or '(top level)'}: {_message(err, walked)}"


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


def _choices(text: str) -> str:
    """pydantic's "'a', 'b' or 'c'" -> "a, b, c"."""
    return text.replace("'", "").replace(" or ", ", ")


def _allowed_keys(loc: list[Any]) -> list[str]:
    """The field names of the model found at `loc` in the Spec schema."""
    model: Any = Spec
    for part in loc:
        model = _unwrap(model, part)
    return list(model.model_fields) if _is_model(model) else []


def _unwrap(annotation: Any, part: Any) -> Any:
    """One step along a loc: into a model's field, a list's item, a union's model member."""
    if _is_model(annotation):
        field = annotation.model_fields.get(part) if isinstance(part, str) else None
        return field.annotation if field else annotation
    registry = registry_of(annotation)
    if registry is not None:  # a registered name in the loc, as a union's tag
        return registry[part] if part in registry else annotation
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _unwrap(args[0], part)
    if origin in (list, tuple) and isinstance(part, int):
        return args[0]
    if origin in (typing.Union, types.UnionType):
        models = [a for a in args if _is_model(a)]
        named = [m for m in models if getattr(m.model_fields.get("name"), "default", None) == part]
        return (named or models or [annotation])[0]
    return annotation


def _is_model(x: Any) -> bool:
    return isinstance(x, type) and issubclass(x, BaseModel)
