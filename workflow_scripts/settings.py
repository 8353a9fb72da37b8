"""Stage settings from the config schema: every default lives in ``config/schema/`` and nowhere else.

The rules pass each stage its config section (validated and default-filled by
Snakemake) plus the top-level keys it uses (``covariates``, ``seed``) as
JSON. A stage's settings class (:class:`StageSettings`) has no defaults of its
own: :meth:`StageSettings.from_config` validates what it is given against the
same schema files and fills what is missing from their ``default`` values, so
a stage run by hand, from a test or from a benchmark gets exactly the defaults
a workflow run gets.

Config files are code in Snakemake: :func:`refuse_code_in_config` refuses a
config file that asks Snakemake to evaluate Python (YTE templating, YAML
``!!python`` tags).
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import ClassVar

import yaml

from .errors import InputError, Problem

#: The schema files (the repository's ``config/schema``).
SCHEMA_DIR = Path(__file__).resolve().parents[1] / "config" / "schema"


@functools.cache
def load_schema(name: str) -> dict:
    """``config/schema/<name>.schema.yaml`` as a dict."""
    return yaml.safe_load((SCHEMA_DIR / f"{name}.schema.yaml").read_text(encoding="utf-8"))


def schema_default(*path: str):
    """The ``default`` of a key of ``config/schema/config.schema.yaml``, e.g. ``("ingest", "min_depth")``."""
    node = load_schema("config")
    for key in path:
        node = node["properties"][key]
    return copy.deepcopy(node["default"])


def _filling_validator(schema: dict):
    """A JSON-schema validator that fills defaults, as ``snakemake.utils.validate`` does."""
    from jsonschema import Draft202012Validator, validators

    validate_properties = Draft202012Validator.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" in subschema:
                    instance.setdefault(name, copy.deepcopy(subschema["default"]))
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(Draft202012Validator, {"properties": set_defaults})(schema)


def _as_json(value):
    """Tuples as lists, as they would arrive from the rule's JSON."""
    if isinstance(value, dict):
        return {k: _as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_json(v) for v in value]
    return value


def section_schema(section: str, top_level: tuple[str, ...] = ()) -> dict:
    """The schema of one stage's flat settings: its config section's keys plus some top-level keys."""
    properties = dict(load_schema(section)["properties"][section]["properties"])
    top = load_schema("config")["properties"]
    properties.update({name: top[name] for name in top_level})
    return {"type": "object", "additionalProperties": False, "properties": properties}


def key_path(section: str, path: list, top_level: tuple[str, ...] = ()) -> str:
    """Where a value sits in the config: ``differential.linda.pseudo_count``, or ``covariates``."""
    parts = [str(p) for p in path]
    return ".".join(parts if parts and parts[0] in top_level else [section, *parts])


def fill_defaults(section: str, values: dict | None = None, top_level: tuple[str, ...] = ()) -> dict:
    """A stage's settings, validated against the schema, missing keys filled from its defaults.

    Parameters
    ----------
    section : str
        The config section and schema file, e.g. ``"differential"``.
    values : dict, optional
        The section's keys (nested sections may be partial) and the top-level
        keys in ``top_level``.
    top_level : tuple of str
        Top-level config keys the stage takes too (``covariates``, ``seed``).

    Raises
    ------
    InputError
        One problem per unknown key and per value the schema refuses.
    """
    schema = section_schema(section, top_level)
    values = _as_json(dict(values or {}))
    known = sorted(schema["properties"])
    problems = [Problem(f"config {section}.{key}", f"unknown {section} settings {[key]}",
                        f"use one of {known} (config/schema/{section}.schema.yaml)") for key in sorted(values)
                if key not in schema["properties"]]
    if not problems:
        errors = sorted(_filling_validator(schema).iter_errors(values), key=lambda e: list(map(str, e.path)))
        problems = [Problem(f"config {key_path(section, list(e.path), top_level)}", e.message,
                            f"see config/schema/{'config' if e.path and e.path[0] in top_level else section}"
                            ".schema.yaml") for e in errors]
    if problems:
        raise InputError(problems)
    return values


class StageSettings:
    """Base of every stage's settings dataclass (fields = the keys of its schema section).

    Subclasses set :attr:`SECTION` and :attr:`TOP_LEVEL` and declare their
    fields without defaults; build them with :meth:`from_config`.
    """

    SECTION: ClassVar[str] = ""
    TOP_LEVEL: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def from_config(cls, values: dict | None = None, **overrides):
        """Settings from the rule's JSON (or any partial dict, or keywords), schema defaults filled."""
        return cls(**fill_defaults(cls.SECTION, {**(values or {}), **overrides}, cls.TOP_LEVEL))


# ---------------------------------------------------------------------------
# Config files that are code

_PYTHON_TAG = re.compile(r"!!python/|!<tag:yaml\.org,2002:python/|tag:yaml\.org,2002:python/")


def refuse_code_in_config(path: str | Path) -> str | None:
    """Why a config file must not be used (it asks for Python to be evaluated), or None.

    Snakemake evaluates a config file with ``__use_yte__: true`` as a YTE
    template (Python expressions) and constructs ``!!python/...`` YAML tags,
    so such a file is a program. The workflow's configs are data only.
    """
    text = Path(path).read_text(encoding="utf-8", errors="replace")
    if _PYTHON_TAG.search(text):
        return f"{path}: a YAML '!!python/...' tag asks for Python objects to be built"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        if "python" in str(err):
            return f"{path}: a YAML python tag asks for Python objects to be built"
        return None  # not YAML at all: Snakemake has already said so
    if isinstance(data, dict) and "__use_yte__" in data:
        return f"{path}: '__use_yte__' turns on YTE templating, which evaluates Python expressions"
    return None


# ---------------------------------------------------------------------------
# Paths in the config

def unsafe_path_pattern() -> str:
    """The pattern a path in the config must not match (``config.schema.yaml``, ``$defs/unsafe_path``).

    It refuses control characters (newline, tab...), the shell's metacharacters
    and quotes, glob characters, Snakemake's wildcard braces and a leading
    ``-``. The rules quote every path anyway; refusing these too means a quoting
    slip in a rule can never run code, and no log, ledger or report line can be
    forged with a newline. Letters (any script), digits, spaces and
    ``. _ - / + , = @ % :`` are allowed.
    """
    return load_schema("config")["$defs"]["unsafe_path"]["pattern"]


def path_problem(value: str) -> str | None:
    """Why ``value`` cannot be a path in the config (see :func:`unsafe_path_pattern`), or None."""
    pattern = unsafe_path_pattern()
    if value == "":
        return "is empty"
    if not re.search(pattern, value):
        return None
    if value.startswith("-"):
        return "starts with '-' (it would read as an option)"
    bad = sorted({c for c in value if c != "-" and re.search(pattern, c)})
    return f"contains {', '.join(map(repr, bad))} (a shell, control or Snakemake wildcard character)"


def path_problems(config: dict) -> list[str]:
    """One line per path-like config value (``outdir``, ``inputs.*``) that :func:`path_problem` refuses."""
    values = {"outdir": config.get("outdir")}
    inputs = config.get("inputs")
    if isinstance(inputs, dict):
        values.update({f"inputs.{k}": v for k, v in inputs.items() if k != "abundance_kind"})
    lines = []
    for key, value in values.items():
        why = path_problem(value) if isinstance(value, str) else None
        if why:
            lines.append(f"config {key} = {value!r} {why}. Fix: use a path of letters, digits, spaces "
                         "and . _ - / + , = @ % : only (rename or link the directory).")
    return lines
