"""The one configuration system of genmat: pydantic models with one set of defaults.

Every settings object — the network (``UNetConfig``, ``MLPConfig``), the generator and its
sampler (``GeneratorConfig``, ``SamplerConfig`` and the per-family settings), training
(``TrainConfig``), the recipe head (``RecipeConfig``), the loop (``LoopConfig``) and the
Prefect steps' parameters — derives from :class:`Config`:

- validated whole when built, from keywords, a dict or JSON (nested dicts become nested
  configs); an unknown field, a value of the wrong type, NaN or ±inf, or a value outside
  its range is a :class:`ConfigError` (an :class:`~genmat.errors.InputError`) naming the
  field by its dotted path, the value and what is allowed — never a traceback;
- immutable (``frozen``): ``config.replace(steps=10)`` is a new, validated copy;
- ``to_dict()`` / ``from_dict()`` round-trip (what checkpoints and MLflow params hold).

The CLI's options take their defaults from these classes (a test checks it), so the
defaults live in one place.
"""

from __future__ import annotations

from typing import Any, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from genmat.errors import GenmatError, InputError

__all__ = ["Config", "ConfigError", "config_error"]

_ALLOWED = {"greater_than_equal": "≥ {ge}", "greater_than": "> {gt}", "less_than_equal": "≤ {le}",
            "less_than": "< {lt}", "too_short": "at least {min_length} items", "too_long": "at most {max_length} items"}


class ConfigError(InputError):
    """A configuration value that is not allowed: its dotted ``field``, ``value``, ``allowed``
    and the ``reason``."""

    def __init__(self, *, field: str | None, value: Any, allowed: str | None,
                 reason: str = "is outside the allowed range", more: str = "") -> None:
        self.reason = reason
        super().__init__("", field=field, value=value, allowed=allowed)
        self.args = (self.describe() + more,)

    def describe(self) -> str:
        if self.reason == "is not a known setting":
            return f"{self.field} is not a known setting" + (f"; allowed: {self.allowed}" if self.allowed else "")
        if self.reason == "is outside the allowed range":
            return f"{self.field} = {self.value!r} is outside the allowed range {self.allowed}"
        return (f"{self.field} = {self.value!r}: " if self.field else "") + self.reason


def config_error(exc: ValidationError, model: type[BaseModel] | None = None) -> GenmatError:
    """The first error of a pydantic ``ValidationError`` as one genmat error naming the field
    by its dotted path: a field's constraint becomes a :class:`ConfigError` ``field = value:
    why; allowed: …`` (``and N more`` when there are); a check of a nested config's own (a
    GenmatError raised inside it) keeps its class and gains the path."""
    error = exc.errors()[0]
    where = ".".join(str(p) for p in error["loc"])
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    original = error.get("ctx", {}).get("error")
    if isinstance(original, GenmatError):
        if where:  # raised inside a nested config: name it from the top
            inner = getattr(original, "field", None)
            original.field = f"{where}.{inner}" if inner else where
            if isinstance(original, ConfigError):
                original.args = (original.describe() + more,)
            else:  # a nested config's own check: its message, behind the path to it
                path = f"{where}.{original._config_path}" if hasattr(original, "_config_path") else where
                base = getattr(original, "_config_message", original.args[0] if original.args else "")
                original._config_path, original._config_message = path, base
                original.args = (f"{path}: {base}{more}",)
        return original
    kind, ctx = error["type"], error.get("ctx", {})
    value = error.get("input")
    if kind in _ALLOWED:
        return ConfigError(field=where or None, value=value, allowed=_ALLOWED[kind].format(**ctx), more=more)
    if kind == "extra_forbidden":
        # a nested config validates in its own __init__ (a Config overrides it), so the unknown
        # name is always one of ``model``'s own settings; the path to it is added by the outer one
        known = ", ".join(model.model_fields) if model is not None else None
        return ConfigError(field=where or None, value=value, allowed=known, reason="is not a known setting",
                           more=more)
    reason = error["msg"].removeprefix("Value error, ")
    return ConfigError(field=where or None, value=value, allowed=None, reason=reason[:1].lower() + reason[1:],
                       more=more)


class Config(BaseModel):
    """Base of genmat's settings: frozen, no unknown fields, no NaN/inf, errors as
    :class:`ConfigError`."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False, validate_default=False)

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            raise config_error(exc, type(self)) from None

    @classmethod
    def model_validate(cls, obj: Any, **kwargs: Any):  # type: ignore[override]
        try:
            return super().model_validate(obj, **kwargs)
        except ValidationError as exc:
            raise config_error(exc, cls) from None

    def replace(self, **changes: Any):
        """A validated copy with ``changes`` (nested configs may be given as dicts)."""
        return type(self)(**{**{name: getattr(self, name) for name in type(self).model_fields}, **changes})

    def to_dict(self) -> dict:
        return self.model_dump()

    @classmethod
    def from_dict(cls, d: Mapping):
        return cls.model_validate(dict(d))
