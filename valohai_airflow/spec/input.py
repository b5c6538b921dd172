"""Step inputs (``input-item``)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import BeforeValidator, Field, StringConstraints, field_validator

from valohai_airflow.spec._base import Bool, SpecModel, Str, spec_error, to_plain
from valohai_airflow.spec.paths import climbs_out, is_relative_local, relative_path_problem, segment_problem

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
    """A step input; ``default`` is always a tuple of URLs (a scalar becomes a 1-tuple, none becomes ()).

    Its `name` is a folder below /valohai/inputs and its `filename` a path below that folder: both
    are refused when they would leave it (`spec.paths`), as is a relative default that climbs out of
    the project folder."""

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

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        problem = segment_problem(value)
        if problem:
            raise spec_error("input_name", "{value!r} {problem}", {"value": value, "problem": problem})
        return value

    @field_validator("filename")
    @classmethod
    def _filename(cls, value: str | None) -> str | None:
        problem = None if value is None else relative_path_problem(value)
        if problem:
            raise spec_error(
                "input_filename",
                "{value!r} {problem} (the input's folder below /valohai/inputs)",
                {"value": value, "problem": problem},
            )
        return value

    @field_validator("default", mode="before")
    @classmethod
    def _default(cls, value: Any) -> Any:
        if value is None:
            return ()
        if isinstance(value, str):
            value = [value]
        if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
            for url in value:
                if is_relative_local(url) and climbs_out(url):
                    raise spec_error(
                        "input_default",
                        "{url!r} leaves the project folder; a relative default is read below it",
                        {"url": url},
                    )
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
