"""Record classes for the boot path: dataclass-like, without dataclasses' start-up cost.

`import dataclasses` pulls in `inspect` (about 10 ms) and each decorated class costs
about 0.6 ms more for the methods it generates with exec(); with some 40 records that
is a third of a boot stage's budget. A `Record` subclass declares its fields the same
way (annotations, defaults, `spec(...)`), gets `__init__` (positional or keyword),
`__eq__`, `__hash__` and `__repr__` from this base, and costs microseconds to define.
A class's `__init__` is compiled on its first instantiation, so the records a run
never builds cost nothing and the ones it builds thousands of times are fast.
`typing.dataclass_transform` tells type checkers to treat it like a dataclass.
"""

from __future__ import annotations

from typing import Any, ClassVar, dataclass_transform

_MISSING: Any = object()


class Field:
    """One declared field: its name, default, and YAML metadata (see spec())."""

    __slots__ = ("default", "factory", "metadata", "name")

    def __init__(self, default: Any = _MISSING, factory: Any = None,
                 metadata: dict[str, Any] | None = None) -> None:
        self.name = ""
        self.default = default
        self.factory = factory
        self.metadata = metadata or {}

    @property
    def required(self) -> bool:
        return self.default is _MISSING and self.factory is None

    def make_default(self) -> Any:
        return self.factory() if self.factory is not None else self.default

    def __repr__(self) -> str:
        return f"Field({self.name!r})"


def spec(
    default: Any = _MISSING,
    *,
    factory: Any = None,
    key: str | None = None,
    aliases: tuple[str, ...] = (),
    doc: str = "",
    secret: bool = False,
    ge: int | None = None,
    le: int | None = None,
) -> Any:
    """A field with its YAML key, accepted aliases and documentation.

    `key` is the YAML spelling when it is not the attribute name (`if`); `aliases` are
    other spellings accepted on input (`ownerstring`); `secret` marks values never to
    be logged (passwords); `ge`/`le` bound an integer.
    """
    meta = {"key": key, "aliases": aliases, "doc": doc, "secret": secret, "ge": ge, "le": le}
    return Field(default, factory, meta)


@dataclass_transform(field_specifiers=(spec, Field))
class Record:
    """Base of every record: fields from annotations, in declaration order (bases first)."""

    __slots__ = ()
    __fields__: ClassVar[tuple[Field, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inherited = {f.name: f for base in reversed(cls.__mro__[1:])
                     for f in getattr(base, "__fields__", ())}
        for name in cls.__dict__.get("__annotations__", {}):  # noqa: RUF063 - own class only
            if name.startswith("_") or name == "__fields__":
                continue
            value = cls.__dict__.get(name, _MISSING)
            field = value if isinstance(value, Field) else Field(value)
            field.name = name
            inherited[name] = field
            if isinstance(value, Field):
                delattr(cls, name)  # instances always carry their own value
        cls.__fields__ = tuple(inherited.values())
        if "__init__" not in cls.__dict__:
            cls.__init__ = Record.__init__  # type: ignore[method-assign]  # compiled on first use

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        cls = type(self)
        init = _compile_init(cls)
        cls.__init__ = init  # type: ignore[method-assign]
        init(self, *args, **kwargs)

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in self.__fields__)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self).__name__, *self._values()))

    def __repr__(self) -> str:
        inner = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in self.__fields__)
        return f"{type(self).__name__}({inner})"


def _compile_init(cls: type[Record]) -> Any:
    """An `__init__` for exactly cls's fields (positional or keyword, as a dataclass's)."""
    env: dict[str, Any] = {"_M": _MISSING, "_TypeError": TypeError}
    params, body = [], []
    for i, f in enumerate(cls.__fields__):
        params.append(f"{f.name}=_M")
        if f.required:
            message = repr(f"{cls.__name__} needs '{f.name}'")
            body.append(f"    if {f.name} is _M: raise _TypeError({message})")
        elif f.factory is not None:
            env[f"_F{i}"] = f.factory
            body.append(f"    if {f.name} is _M: {f.name} = _F{i}()")
        else:
            env[f"_D{i}"] = f.default
            body.append(f"    if {f.name} is _M: {f.name} = _D{i}")
        body.append(f"    self.{f.name} = {f.name}")
    if hasattr(cls, "__post_init__"):
        body.append("    self.__post_init__()")
    source = f"def __init__(self, {', '.join(params)}):\n" + ("\n".join(body) or "    pass")
    exec(source, env)
    init = env["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    return init


def fields(cls_or_obj: Any) -> tuple[Field, ...]:
    """The fields of a Record class or instance, in declaration order."""
    return cls_or_obj.__fields__  # type: ignore[no-any-return]


def is_record(obj: Any) -> bool:
    return isinstance(obj, type) and issubclass(obj, Record)


def replace(obj: Record, **changes: Any) -> Any:
    """A copy of `obj` with some fields changed."""
    values = {f.name: getattr(obj, f.name) for f in obj.__fields__}
    values.update(changes)
    return type(obj)(**values)
