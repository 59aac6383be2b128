"""Settings that do not load, told as the setting and the environment variable to fix.

pydantic reports a location (``serving.max_flights``) and pydantic-settings a field it could not parse;
a person sets environment variables. :func:`explain` turns either into lines naming both, with the value
given and what is expected, for the command line to print without a traceback.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping

from pydantic import BaseModel, ValidationError
from pydantic_settings import SettingsError

PREFIX = "HYBRIDOPS_"
_FIELD = re.compile(r'field "([^"]+)"')
NOT_SETTINGS = frozenset(
    {
        "HYBRIDOPS_GIT_COMMIT",  # the image's source commit, recorded with each training
        "HYBRIDOPS_DAGSTER_POSTGRES_URL",  # a command-line option's variable (status, history, rollback)
        "HYBRIDOPS_STRICT_TOOLS",  # the test suite's switches (tests/tools.py, tests/orchestration)
        "HYBRIDOPS_UPDATE_SCREENSHOTS",
        "HYBRIDOPS_CHECKOV",
    }
)
"""Variables with the prefix that are not settings, read where they are used."""
# What Kubernetes injects for every Service of the namespace (a Service `hybridops-serving` gives
# HYBRIDOPS_SERVING_SERVICE_HOST, HYBRIDOPS_SERVING_PORT_8000_TCP_ADDR, ...): not the user's spelling.
_SERVICE_LINK = re.compile(
    r"_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$"
)


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


def _service_link(name: str) -> bool:
    # A Service's name is a DNS label: its variables never hold the settings' "__".
    return "__" not in name and _SERVICE_LINK.search(name) is not None


def unknown_variables(model: type[BaseModel], env: Mapping[str, str] | None = None) -> list[str]:
    """One line per ``HYBRIDOPS_*`` variable that names no setting of ``model``: pydantic-settings ignores
    them, so a misspelt top-level name (``HYBRIDOPS_SEVRING__PORT``) would change nothing without a word.
    Unknown keys inside a section are refused by the model itself (``extra="forbid"``)."""
    env = os.environ if env is None else env
    fields = {name.upper(): name for name in model.model_fields}
    lines = []
    for key in sorted(env):
        name = key.upper()
        if not name.startswith(PREFIX) or name in NOT_SETTINGS or _service_link(name):
            continue
        head, _, rest = name.removeprefix(PREFIX).partition("__")
        if head in fields:
            continue
        close = difflib.get_close_matches(head, list(fields), n=1, cutoff=0.6)
        hint = (
            f"did you mean {PREFIX}{close[0]}{'__' + rest if rest else ''}?"
            if close
            else "check its spelling"
        )
        lines.append(
            f"{key} is not a setting of hybridops, ignored ({hint}); its settings: "
            f"{', '.join(sorted(fields.values()))}"
        )
    return lines
