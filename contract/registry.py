"""One table per extension point (SSL methods, evaluation kinds): name -> settings class.

A settings class carries its name as a `name: Literal[...]` field and is added with
`Registry.add`; a field typed `registry.field` then takes any registered class, chosen by the
`name` its data carries, as a discriminated union would, but open: a class added later (a new
method, an evaluation, a test's toy) is accepted everywhere the field is used, without
editing the models that use it. Errors keep their place: `grid.method[1].rotnet.epochs`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, SerializeAsAny, ValidationError, ValidationInfo, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

M = TypeVar("M", bound=BaseModel)


class Registry(Generic[M]):
    """Name -> settings class of one extension point, in the order they were added (error
    messages list them in that order)."""

    def __init__(self, what: str, base: type[M]) -> None:
        self.what, self.base = what, base
        self._classes: dict[str, type[M]] = {}
        # SerializeAsAny: a dump holds the subclass's fields, not only the base's.
        self.field: Any = Annotated[SerializeAsAny[base], WrapValidator(self._validate), self]

    def add(self, cls: type[M]) -> type[M]:
        """Register a settings class under the default of its `name` field (usable as a
        decorator).

        Raises:
            ValueError: another class already holds that name.
        """
        name = cls.model_fields["name"].default
        if self._classes.get(name, cls) is not cls:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._classes[name] = cls
        return cls

    def names(self) -> tuple[str, ...]:
        return tuple(self._classes)

    def __getitem__(self, name: str) -> type[M]:
        return self._classes[name]

    def __contains__(self, name: object) -> bool:
        return name in self._classes

    def __iter__(self):
        return iter(self._classes.values())

    def _validate(self, data: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> M:
        if isinstance(data, self.base):
            return data  # type: ignore[return-value]
        name = data.get("name") if isinstance(data, dict) else None
        if name not in self._classes:
            # The types and context pydantic gives a discriminated union's errors, so that
            # errors read the same: `'rotnett' is not one of random, rotnet, ...`.
            if name is None:
                raise PydanticCustomError("union_tag_not_found", "a `name` is required")
            expected = ", ".join(repr(n) for n in self._classes)
            raise PydanticCustomError(
                "union_tag_invalid", "{tag!r} is not one of {expected_tags}", {"tag": name, "expected_tags": expected}
            )
        try:
            return self._classes[name].model_validate(data, context=info.context)
        except ValidationError as e:
            # The name in the place, as a discriminated union puts its tag there: the loader
            # walks it to the class whose keys an unknown key is compared with.
            # Each error is carried as it was (its type, message and context), whatever its type.
            raise ValidationError.from_exception_data(
                e.title,
                [InitErrorDetails(type=PydanticCustomError(err["type"], err["msg"], err.get("ctx")),
                                  loc=(name, *err["loc"]), input=err["input"]) for err in e.errors(include_url=False)],
            ) from None


def registry_of(annotation: Any) -> Registry | None:
    """The registry behind a `registry.field` annotation, if it is one."""
    return next((m for m in getattr(annotation, "__metadata__", ()) if isinstance(m, Registry)), None)
