"""Step inputs (``input-item``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from valohai_airflow.spec._base import Bool, SpecModel, Str, spec_error, to_plain

KeepDirectories = Literal["none", "full", "suffix"]


def _keep_directories(value: Any) -> Any:
    """valohai-yaml's KeepDirectories.cast: false/None → none, true → full, strings lower-cased."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "full"
    if isinstance(value, str) and value.lower() in ("none", "full", "suffix"):
        return value.lower()
    raise spec_error(
        "keep_directories",
        "must be true, false, 'none', 'full' or 'suffix', got {value!r}",
        {"value": to_plain(value)},
    )


class Input(SpecModel):
    """A step input; ``default`` is always a tuple of URLs (a scalar becomes a 1-tuple, none becomes ())."""

    kind: ClassVar[str] = "input"

    name: Annotated[str, StringConstraints(strict=True, max_length=64)]
    default: tuple[str, ...] = ()
    optional: Bool = False
    keep_directories: Annotated[KeepDirectories, BeforeValidator(_keep_directories)] = Field(
        default="none", alias="keep-directories"
    )
    filename: Str | None = None
    download: Literal["always", "on-demand"] = "always"
    description: Str | None = None

    @field_validator("default", mode="before")
    @classmethod
    def _default(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            return (value,)
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            return tuple(value)
        raise spec_error(
            "input_default",
            "must be a URL string or a list of URL strings, got {value!r}",
            {"value": to_plain(value)},
        )

    @field_validator("download", mode="before")
    @classmethod
    def _download(cls, value: Any) -> Any:
        if value is None:
            return "always"
        return value.lower() if isinstance(value, str) else value

    @property
    def required(self) -> bool:
        """Valohai's definition: no default and not optional."""
        return not self.default and not self.optional
