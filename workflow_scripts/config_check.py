"""Config validation with messages a person can read.

``snakemake.utils.validate`` answers a misspelt key with the whole JSON schema
(80-320 lines). :func:`check_config` validates against the same schema files and
fills their defaults the same way, but reports one line per problem: the key's
path, what is wrong, the nearest valid key or value ("did you mean ...") and the
fix. ``rules/common.smk`` calls it for the main schema and for each stage's
section schema.
"""

from __future__ import annotations

import difflib
import sys
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator, validators

from .errors import InputError, Problem

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "config" / "schema"
JSON_TYPES = {"string": "text", "number": "a number", "integer": "a whole number", "boolean": "true or false",
              "array": "a list", "object": "a section of keys", "null": "empty (null)"}


def _load(path) -> dict:
    return yaml.safe_load(Path(path).read_text())


def _type_of(value) -> str:
    if value is None:
        return "empty (null)"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, int):
        return "a whole number"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a section of keys"
    return type(value).__name__


def _dotted(path) -> str:
    parts = []
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + str(part))
    return "".join(parts) or "(top level)"


def _key_paths(schema: dict, prefix: tuple = ()) -> list[tuple]:
    """Every key path a schema defines (``("ingest", "min_depth")``, ...)."""
    paths = []
    for name, sub in (schema.get("properties") or {}).items():
        paths.append(prefix + (name,))
        if isinstance(sub, dict):
            paths += _key_paths(sub, prefix + (name,))
    return paths


def known_key_paths(schema_dir=SCHEMA_DIR) -> list[tuple]:
    """Key paths of every schema file of the workflow (main config and stage sections)."""
    paths: set[tuple] = set()
    for path in sorted(Path(schema_dir).glob("*.schema.yaml")):
        paths.update(_key_paths(_load(path)))
    return sorted(paths)


def _nearest(word: str, choices) -> str | None:
    choices = [str(c) for c in choices]
    lower = {c.lower(): c for c in choices}
    if word.lower() in lower:
        return lower[word.lower()]
    match = difflib.get_close_matches(word, choices, n=1, cutoff=0.6) or \
        difflib.get_close_matches(word.lower(), list(lower), n=1, cutoff=0.6)
    return lower.get(match[0], match[0]) if match else None


def _suggest_key(key: str, where: tuple, siblings, all_paths) -> str:
    """' (did you mean ...?)' for an unknown key, or ''."""
    near = _nearest(key, siblings)
    if near is not None:
        return f" (did you mean {_dotted(where + (near,))!r}?)"
    elsewhere = [p for p in all_paths if p[-1] == key and p[:-1] != where]
    if elsewhere:
        return f" (did you mean {_dotted(elsewhere[0])!r}? the key belongs in another section)"
    leaves = {p[-1]: p for p in all_paths}
    near = _nearest(key, leaves)
    return f" (did you mean {_dotted(leaves[near])!r}?)" if near else ""


def _problems_of(error, all_paths, schema_name) -> list[Problem]:
    """One readable problem (or one per unknown key) for a jsonschema error."""
    path = tuple(error.absolute_path)
    key = _dotted(path)
    kind = error.validator
    value = error.instance
    doc = f"every key is documented in config/schema/{schema_name}"
    if kind == "additionalProperties":
        allowed = list((error.schema.get("properties") or {}))
        unknown = [k for k in value if k not in allowed]
        return [Problem("config", f"key {_dotted(path + (k,))!r} is not a known key"
                        f"{_suggest_key(str(k), path, allowed, all_paths)}",
                        f"correct the key's spelling or remove it ({doc})") for k in unknown]
    description = " ".join((error.schema.get("description") or "").split()).split(". ")[0].rstrip(".")
    about = f" ({description})" if description else ""
    if kind == "enum":
        options = error.validator_value
        near = _nearest(str(value), options) if isinstance(value, str) else None
        hint = f" (did you mean {near!r}?)" if near else ""
        return [Problem("config", f"key {key!r} is {value!r}, not one of "
                        f"{', '.join(map(str, options))}{hint}", f"use one of the listed values{about}")]
    if kind == "type":
        wanted = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        wanted = " or ".join(JSON_TYPES.get(w, w) for w in wanted)
        return [Problem("config", f"key {key!r} is {_type_of(value)} ({value!r}), but it must be {wanted}",
                        f"give {wanted}{about}")]
    if kind == "required":
        missing = [k for k in error.validator_value if k not in value]
        return [Problem("config", f"required key {_dotted(path + (k,))!r} is missing",
                        f"add it to the config ({doc})") for k in missing]
    if kind in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        words = {"minimum": "below the minimum", "maximum": "above the maximum",
                 "exclusiveMinimum": "not above", "exclusiveMaximum": "not below"}
        return [Problem("config", f"key {key!r} is {value!r}, {words[kind]} {error.validator_value!r}",
                        f"give a value in the allowed range{about}")]
    if kind in ("minItems", "uniqueItems", "maxItems"):
        return [Problem("config", f"key {key!r}: {error.message}", f"correct the list{about}")]
    message = error.message if len(error.message) <= 200 else error.message[:200] + "..."
    return [Problem("config", f"key {key!r}: {message}", f"correct the value ({doc})")]


def _with_defaults(validator_class):
    """A validator that fills schema defaults while it validates (as snakemake.utils.validate)."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, sub in properties.items():
                if isinstance(sub, dict) and "default" in sub:
                    instance.setdefault(name, sub["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return validators.extend(validator_class, {"properties": set_defaults})


def config_problems(config: dict, schema_path) -> list[Problem]:
    """Every problem of ``config`` against one schema file, readable; the config is not changed."""
    schema_path = Path(schema_path)
    schema = _load(schema_path)
    all_paths = known_key_paths(schema_path.parent)
    errors = sorted(Draft202012Validator(schema).iter_errors(config),
                    key=lambda e: (len(e.absolute_path), [str(p) for p in e.absolute_path]))
    return [p for e in errors for p in _problems_of(e, all_paths, schema_path.name)]


MAIN_SCHEMA = "config.schema.yaml"


def validate_config(config: dict, schema_path) -> dict:
    """Validate ``config`` against ``schema_path`` and fill its defaults in place.

    For the main schema (``config.schema.yaml``) the stage sections are checked
    against their own schema files too, so one run lists every problem.

    Raises
    ------
    InputError
        With one readable problem per wrong key or value.
    """
    schema_path = Path(schema_path)
    problems = config_problems(config, schema_path)
    if schema_path.name == MAIN_SCHEMA and isinstance(config, dict):
        for other in sorted(schema_path.parent.glob("*.schema.yaml")):
            if other.name != MAIN_SCHEMA:
                problems += [p for p in config_problems(config, other) if p not in problems]
    if problems:
        raise InputError(problems)
    _with_defaults(Draft202012Validator)(_load(schema_path)).validate(config)
    if "case_label" in config and config["case_label"] == config.get("control_label"):
        raise InputError([Problem("config", f"case_label and control_label are both {config['case_label']!r}",
                                  "give the two status labels different values (e.g. case_label: MS, "
                                  "control_label: HHC)")])
    return config


def check_config(config: dict, schema_path) -> None:
    """For Snakefiles: :func:`validate_config`, or print its problems and exit with status 1.

    Exiting (rather than raising) keeps Snakemake from adding its own traceback
    lines to the message.
    """
    try:
        validate_config(config, schema_path)
    except InputError as err:
        print(f"{err.report()}\nNothing was run. Fix the config and run again.", file=sys.stderr)
        sys.exit(1)
