"""One table per extension point (SSL methods, evaluation kinds): name -> entry.

An entry is a settings class (a method's) or an object that carries one (an evaluation kind and
its grid item's settings). A settings class carries its name as a `name: Literal[...]` field and
its entry is added with `Registry.add`; a field typed `registry.field` then takes any registered
settings, chosen by the `name` its data carries, as a discriminated union would, but open: an
entry added later (a new method, an evaluation, a plugin's) is accepted everywhere the field is
used, without editing the models that use it. Errors keep their place: `grid.method[1].rotnet.epochs`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, SerializeAsAny, ValidationError, ValidationInfo, WrapValidator
from pydantic_core import InitErrorDetails, PydanticCustomError

E = TypeVar("E")


def _itself(entry: Any) -> type[BaseModel]:
    return entry


class Registry(Generic[E]):
    """Name -> entry of one extension point, in the order they were added (error messages
    list them in that order). `settings_of` gives an entry's settings class (default: the entry
    is one)."""

    def __init__(self, what: str, base: type[BaseModel], settings_of: Callable[[E], type[BaseModel]] = _itself) -> None:
        self.what, self.base, self.settings_of = what, base, settings_of
        self._entries: dict[str, E] = {}
        # SerializeAsAny: a dump holds the subclass's fields, not only the base's.
        self.field: Any = Annotated[SerializeAsAny[base], WrapValidator(self._validate), self]

    def add(self, entry: E) -> E:
        """Register an entry under the default of its settings' `name` field (usable as a
        decorator).

        Raises:
            ValueError: another entry already holds that name.
        """
        name = self.settings_of(entry).model_fields["name"].default
        if self._entries.get(name, entry) is not entry:
            raise ValueError(f"{self.what} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def settings(self, name: str) -> type[BaseModel]:
        """The settings class registered under `name`."""
        return self.settings_of(self._entries[name])

    def __getitem__(self, name: str) -> E:
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[E]:
        return iter(self._entries.values())

    def _validate(self, data: Any, handler: Callable[[Any], Any], info: ValidationInfo) -> BaseModel:
        if isinstance(data, self.base):
            return data
        name = data.get("name") if isinstance(data, dict) else None
        if name not in self._entries:
            # The types and context pydantic gives a discriminated union's errors, so that
            # errors read the same: `'rotnett' is not one of random, rotnet, ...`.
            if name is None:
                raise PydanticCustomError("union_tag_not_found", "a `name` is required")
            expected = ", ".join(repr(n) for n in self._entries)
            raise PydanticCustomError(
                "union_tag_invalid", "{tag!r} is not one of {expected_tags}", {"tag": name, "expected_tags": expected}
            )
        try:
            return self.settings(name).model_validate(data, context=info.context)
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
