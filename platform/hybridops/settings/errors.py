"""Settings that do not load, told as the setting and the environment variable to fix.

pydantic reports a location (``serving.max_flights``) and pydantic-settings a field it could not parse;
a person sets environment variables. :func:`explain` turns either into lines naming both, with the value
given and what is expected, for the command line to print without a traceback.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

PREFIX = "HYBRIDOPS_"
_FIELD = re.compile(r'field "([^"]+)"')


def env_name(path: tuple[str, ...]) -> str:
    """The environment variable of a settings path (``("spc", "sigma")`` -> ``HYBRIDOPS_SPC__SIGMA``)."""
    return PREFIX + "__".join(part.upper() for part in path)


def _setting_path(model: type[BaseModel], loc: tuple[int | str, ...]) -> tuple[tuple[str, ...], str]:
    """The fields of ``loc`` that are settings, and the rest: a dict key or list index inside the setting
    (the setting is then the whole list or mapping). A discriminated union's tag is neither."""
    path: list[str] = []
    current = [model]  # a union of sections: any of them may hold the next field
    for index, part in enumerate(loc):
        owner = next((m for m in current if isinstance(part, str) and part in m.model_fields), None)
        if owner is not None:
            path.append(str(part))
            current = _sections(owner.model_fields[str(part)].annotation)
        elif not current or not isinstance(part, str) or len(current) == 1:
            return tuple(path), ".".join(str(rest) for rest in loc[index:])
        # else: the tag of a discriminated union (warehouse.lakehouse.commit_attempts); its fields follow
    return tuple(path), ""


def _sections(annotation: object) -> list[type[BaseModel]]:
    """The settings sections a field holds: one, the members of a union, or none (a plain value)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [found for arg in getattr(annotation, "__args__", ()) or () for found in _sections(arg)]


def _owners(model: type[BaseModel], path: tuple[str, ...]) -> list[type[BaseModel]]:
    current = [model]
    for part in path:
        owner = next(m for m in current if part in m.model_fields)
        current = _sections(owner.model_fields[part].annotation)
    return current


def _given(env: Mapping[str, str], path: tuple[str, ...]) -> str:
    name = env_name(path)
    for key, value in env.items():
        if key.upper() == name:
            return f"{name}={value!r}"
    return name


def explain(
    exc: ValidationError | SettingsError, model: type[BaseModel], env: Mapping[str, str] | None = None
) -> list[str]:
    """One line per problem: the setting, its environment variable with the value given, what is expected."""
    env = os.environ if env is None else env
    if isinstance(exc, SettingsError):
        match = _FIELD.search(str(exc))
        section = match.group(1) if match else ""
        given = sorted(
            f"{key}={value!r}"
            for key, value in env.items()
            if section and key.upper().startswith(env_name((section,)))
        )
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        return [
            f"setting {section or '?'}: cannot parse {', '.join(given) or 'its environment variable'}{cause}; "
            'lists and mappings are JSON (["a", "b"], {"key": 1}), or set one key with __ '
            f"({env_name((section, 'key'))})"
        ]
    lines = []
    for error in exc.errors(include_url=False):
        loc = tuple(error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":  # a key no section has: a typo, or a setting that moved
            section, _ = _setting_path(model, loc[:-1])
            known = sorted({name for m in _owners(model, section) for name in m.model_fields})
            lines.append(
                f"{env_name((*section, str(loc[-1])))} is not a setting of {'.'.join(section) or 'hybridops'} "
                f"(check its spelling, or unset it); its settings: {', '.join(known)}"
            )
            continue
        path, detail = _setting_path(model, loc)
        if not path:  # a rule across settings (mode=server): its message names the variables
            lines.append(f"settings: {message}")
            continue
        where = ".".join(path) + (f" [{detail}]" if detail else "")
        lines.append(f"setting {where} ({_given(env, path)}): {message}")
    return lines
