"""What every stage's command line shares: logging, settings, writing files, reporting errors.

Each stage's ``cli.py`` builds an :mod:`argparse` parser whose commands take
explicit file paths (the rules own every file name); its ``main`` is
:func:`entry_point`, which runs :func:`run`:

- sends the log to stderr and to the ``--log`` file;
- runs the command and logs the files it read and wrote (so no log is empty);
- on bad input (:class:`~workflow_scripts.errors.InputError`) writes one line
  per problem (file, row or id, the fix) to stderr and the log and exits
  with status 1, without a traceback;
- on an unexpected error writes one short line to stderr and the log, the
  full traceback to the log only, and exits with status 1.

Tables are written by :func:`write_table` (tab-separated, ``\\n`` line ends,
floats with :data:`FLOAT_FORMAT`, missing values as :data:`NA`) and read back by
:func:`read_table`; JSON by :func:`write_json` (sorted keys, two-space indent),
so the same inputs give byte-identical files.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import traceback
from pathlib import Path

import pandas as pd

from .errors import InputError

#: Floats in the result tables: 10 significant digits, far below any difference that
#: matters and above the noise of the fits, so results are byte-identical from run to run.
FLOAT_FORMAT = "%.10g"
#: Missing values: an empty cell (R's read.delim and pandas read it as missing).
NA = ""


def setup_logging(path: str | None) -> None:
    """Log records (INFO and up) to stderr and, when given, to the file ``path``."""
    handlers = [logging.StreamHandler(sys.stderr)]
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(path, mode="w"))
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s",
                        handlers=handlers, force=True)


def json_argument(text: str) -> dict:
    """A ``--settings`` value: JSON text, or ``@file.json``."""
    if text.startswith("@"):
        text = Path(text[1:]).read_text(encoding="utf-8")
    return json.loads(text)


def write_table(frame: pd.DataFrame, path, index: bool = False, exact: bool = False) -> None:
    """``frame`` as a UTF-8 TSV at ``path`` (parent directories created; ``path`` may be an open file).

    ``exact``: every float in the shortest form that reads back to the same
    number, for the data one job hands to the next (the harmonised cohort, the
    prepared association inputs); otherwise :data:`FLOAT_FORMAT`.
    """
    if isinstance(path, (str, Path)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, sep="\t", index=index, lineterminator="\n", na_rep=NA,
                 float_format=None if exact else FLOAT_FORMAT)


def append_rows(frame: pd.DataFrame, handle) -> None:
    """``frame``'s rows (no header) at the end of an open table, written as :func:`write_table` does."""
    frame.to_csv(handle, sep="\t", index=False, header=False, lineterminator="\n", na_rep=NA,
                 float_format=FLOAT_FORMAT)


def read_table(path, dtype=None, index_col=None) -> pd.DataFrame:
    """A table :func:`write_table` wrote: only an empty cell is missing (a value "NA" stays text)."""
    return pd.read_csv(path, sep="\t", keep_default_na=False, na_values=[NA], dtype=dtype, index_col=index_col)


def write_json(data: dict, path) -> None:
    """``data`` as JSON with sorted keys at ``path`` (values JSON cannot hold are written as text)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the module docstring as help."""
    return argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)


def command(parser: argparse.ArgumentParser, function) -> argparse.ArgumentParser:
    """Make ``parser`` (or a subcommand's parser) run ``function(args)``, with a ``--log`` option."""
    parser.add_argument("--log", help="log file (besides stderr)")
    parser.set_defaults(function=function)
    return parser


def required(parser: argparse.ArgumentParser, *names: str, nargs=None) -> None:
    """Required options ``--<name>`` (file paths, mostly); ``nargs="*"`` for a list of files."""
    for name in names:
        parser.add_argument(f"--{name}", required=True, nargs=nargs)


def subcommands(description: str, commands: dict) -> tuple[argparse.ArgumentParser, dict]:
    """A parser with one subcommand per ``name: (function, help)``; returns it and the subcommands' parsers."""
    top = parser(description)
    sub = top.add_subparsers(dest="command", required=True)
    return top, {name: command(sub.add_parser(name, help=text), function)
                 for name, (function, text) in commands.items()}


def entry_point(build_parser, name: str):
    """The ``main(argv=None)`` of a stage's command line: :func:`run` with its parser."""
    def main(argv: list[str] | None = None) -> int:
        return run(build_parser(), argv, name)

    return main


#: Arguments that are never files (the log is the run's own; settings are JSON text).
NOT_FILES = {"log", "function", "settings", "command"}
#: Files named one by one in the log line, at most (the rest counted).
LOG_FILES_SHOWN = 12


def _file_arguments(args: argparse.Namespace) -> list[str]:
    """Every argument value that names a path (a string, or a list of strings), in order."""
    found = []
    for name, value in vars(args).items():
        if name in NOT_FILES or value is None:
            continue
        for item in value if isinstance(value, (list, tuple)) else [value]:
            if isinstance(item, (str, Path)) and str(item) and not str(item).lstrip().startswith(("{", "[", "@")):
                found.append(str(item))
    return found


def _state(path: str):
    """(exists, modification time) of ``path``; a value that cannot be a path counts as absent."""
    try:
        stat = Path(path).stat()
    except (OSError, ValueError):
        return None
    return stat.st_mtime_ns


def _names(paths: list[str]) -> str:
    shown = [p + ("/" if Path(p).is_dir() else "") for p in paths[:LOG_FILES_SHOWN]]
    more = f" and {len(paths) - LOG_FILES_SHOWN} more" if len(paths) > LOG_FILES_SHOWN else ""
    return ", ".join(shown) + more


def log_files(log: logging.Logger, args: argparse.Namespace, before: dict) -> None:
    """Log what the command read (paths that existed and did not change) and wrote (new or changed)."""
    read, wrote = [], []
    for path, then in before.items():
        now = _state(path)
        if now is None:
            continue
        (read if then is not None and then == now else wrote).append(path)
    if read:
        log.info("read %s", _names(read))
    log.info("wrote %s", _names(wrote) if wrote else "nothing")


def run(parser: argparse.ArgumentParser, argv: list[str] | None = None, name: str = "workflow") -> int:
    """Parse ``argv``, run the command the parser set (:func:`command`), report errors; the exit status.

    ``name`` names the stage in the log lines. Every successful command logs
    the files it read and wrote (from its path arguments), so no job's log is
    empty.
    """
    log = logging.getLogger(name)
    args = parser.parse_args(argv)
    setup_logging(getattr(args, "log", None))
    before = {path: _state(path) for path in dict.fromkeys(_file_arguments(args))}
    try:
        args.function(args)
    except InputError as err:
        log.error("%s\nNothing was written. Fix the input and run again.", err.report())
        return 1
    except Exception as err:  # noqa: BLE001 - reported in one line, the traceback kept in the log
        where = getattr(args, "log", None)
        log.error("internal error: %s: %s%s", type(err).__name__, err,
                  f" (the full traceback is in {where})" if where else "")
        if where:
            with open(where, "a") as handle:
                handle.write(traceback.format_exc())
        else:
            traceback.print_exc()
        return 1
    log_files(log, args, before)
    return 0
