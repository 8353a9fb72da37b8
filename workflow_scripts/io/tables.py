"""Reading delimited text tables exactly as the input contract describes them.

TSV or CSV (chosen by the file suffix, ``.gz`` allowed), UTF-8 with or without
a byte-order mark, LF or CRLF line endings, one header row, lines starting with
``#`` are comments, missing values are empty cells or ``NA``. Every row keeps
its line number in the file so that errors can point at it.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ..errors import InputError, Problem

ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]+$")
MISSING = {"", "NA"}

# biom-format's own TSV export puts the header in a comment line.
HASH_HEADERS = ("#OTU ID", "#OTU_ID", "#Feature ID", "#FeatureID", "#SampleID")


@dataclass
class RawTable:
    """A delimited table as strings, with the line number of every row."""

    path: str
    header: list[str]
    rows: list[list[str]]
    lines: list[int]


def open_text(path: str | Path) -> str:
    """Return the decoded text of a (possibly gzipped) UTF-8 file.

    Raises :class:`InputError` naming the file for a missing, truncated,
    unreadable or non-UTF-8 file.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError([Problem(str(path), "file does not exist",
                                  "check the path in config/config.yaml (inputs section)")])
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as err:
        raise InputError([Problem(str(path), f"cannot be read ({err})",
                                  "the file looks truncated or corrupt: copy it again")]) from err
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise InputError([Problem(str(path), f"is not UTF-8 (byte {raw[err.start]:#x})",
                                  "save the file as UTF-8", line=line)]) from err


def delimiter_for(path: str | Path, first_line: str = "") -> str:
    """Tab for ``.tsv``/``.txt``/``.tab``, comma for ``.csv``; otherwise sniff the header."""
    name = str(path).lower().removesuffix(".gz")
    if name.endswith(".csv"):
        return ","
    if name.endswith((".tsv", ".txt", ".tab")):
        return "\t"
    return "\t" if "\t" in first_line else ","


def read_raw(path: str | Path, hash_header: bool = False) -> RawTable:
    """Read a delimited table into strings, keeping line numbers.

    Parameters
    ----------
    path : str or Path
    hash_header : bool
        Accept a header written as a comment (``#OTU ID``), as biom-format's
        TSV export does.

    Raises
    ------
    InputError
        For an empty file, or rows whose field count differs from the header
        (a truncated file or a stray delimiter), all reported together.
    """
    text = open_text(path)
    first = next((ln for ln in text.splitlines() if ln and not ln.startswith("#")), "")
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter_for(path, first))
    header: list[str] | None = None
    header_line = 0
    rows, lines, problems = [], [], []
    line_end = 0
    try:
        for fields in reader:
            line_start, line_end = line_end + 1, reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if fields[0].startswith("#"):
                if header is None and hash_header and fields[0].startswith(HASH_HEADERS):
                    header, header_line = [f.strip() for f in fields], line_start
                    header[0] = header[0].lstrip("#").strip()
                continue
            fields = [f.strip() for f in fields]
            if header is None:
                header, header_line = fields, line_start
                continue
            fields = _fit(fields, header)
            if len(fields) != len(header) and line_end > line_start:
                problems.append(Problem(
                    str(path), f"a quoted value starts on this line and runs to line {line_end}",
                    'a value that starts with a quote (") must end with one: close or remove the quote',
                    line=line_start))
                continue
            if len(fields) != len(header):
                problems.append(Problem(
                    str(path), f"has {len(fields)} fields but the header has {len(header)}",
                    "the file may be truncated, or a value contains the delimiter: quote it or remove it",
                    line=line_start))
                continue
            rows.append(fields)
            lines.append(line_start)
    except csv.Error as err:  # an unbalanced quote or a NUL byte
        raise InputError([Problem(str(path), f"cannot be parsed as a delimited table ({err})",
                                  "check the quotes on this line: a value that starts with a quote "
                                  "must end with one", line=reader.line_num)]) from err
    if header is None:
        raise InputError([Problem(str(path), "is empty (no header row)",
                                  "give a table with a header row and one row per record")])
    header, rows, header_problems = _check_header(header, rows, path, header_line)
    problems = header_problems + problems
    if problems:
        raise InputError(problems)
    return RawTable(str(path), header, rows, lines)


def _fit(fields: list[str], header: list[str]) -> list[str]:
    """Forgive a spreadsheet's trailing delimiters: extra empty fields at the end of a row,
    or a row that stops before header columns that have no name."""
    if len(fields) > len(header) and not any(fields[len(header):]):
        return fields[:len(header)]
    if len(fields) < len(header) and not any(header[len(fields):]):
        return fields + [""] * (len(header) - len(fields))
    return fields


def _check_header(header, rows, path, line):
    """Drop unnamed empty columns (a spreadsheet's trailing tabs); problems for other bad names.

    A column without a name that holds values, a duplicated name, or a name the
    reader reserves (``_line``) would make every later lookup by name ambiguous,
    so each is a problem naming the header line and the column positions.
    """
    unnamed_empty = [j for j, name in enumerate(header)
                     if name == "" and all(row[j] == "" for row in rows)]
    if unnamed_empty:
        keep = [j for j in range(len(header)) if j not in set(unnamed_empty)]
        header = [header[j] for j in keep]
        rows = [[row[j] for j in keep] for row in rows]
    problems, seen = [], {}
    for j, name in enumerate(header, start=1):
        if name == "":
            problems.append(Problem(str(path), f"header column {j} has no name but holds values",
                                    "give the column a name in the header row, or delete it",
                                    line=line))
        elif name in seen:
            problems.append(Problem(str(path), f"column name {name!r} appears twice in the header "
                                    f"(columns {seen[name]} and {j})",
                                    "rename or delete one of the two columns so every column name is "
                                    "unique", line=line, column=name))
        elif name == "_line":
            problems.append(Problem(str(path), "column name '_line' is reserved by the workflow",
                                    "rename the column", line=line, column=name))
        seen.setdefault(name, j)
    return header, rows, problems


def to_frame(raw: RawTable) -> pd.DataFrame:
    """Strings as a DataFrame, missing values as ``None``, plus a ``_line`` column."""
    rows = [[None if v in MISSING else v for v in row] for row in raw.rows]
    frame = pd.DataFrame(rows, columns=raw.header, dtype=object)
    frame["_line"] = raw.lines
    return frame


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a metadata table (participants, manifests, annotations) as strings."""
    return to_frame(read_raw(path))


def check_ids(values, file, column, lines=None, unique=True, pattern=ID_PATTERN,
              what="identifier") -> list[Problem]:
    """Problems for empty, malformed or duplicated identifiers."""
    problems = []
    seen: dict[str, int | None] = {}
    for i, value in enumerate(values):
        line = lines[i] if lines is not None else None
        if value is None or value == "":
            problems.append(Problem(str(file), f"empty {what}", f"give every row a {column}",
                                    line=line, column=column))
            continue
        if not pattern.match(value):
            problems.append(Problem(
                str(file), f"{what} {value!r} has characters outside [A-Za-z0-9._-]",
                "rename it using only letters, digits, '.', '_' and '-' (in every file that uses it)",
                line=line, item=value, column=column))
        if unique and value in seen:
            first = seen[value]
            also = f" (first seen on line {first})" if first is not None else ""
            problems.append(Problem(str(file), f"duplicate {what} {value!r}{also}",
                                    f"make every {column} unique", line=line, item=value,
                                    column=column))
        seen.setdefault(value, line)
    return problems
