"""Property-based tests of the table readers (hypothesis): odd headers, BOMs, CRLF, comments, empty files.

Whatever the bytes, a reader returns a table or raises :class:`InputError`; no
other exception may escape (it would reach the user as a traceback). A file
that *is* a well-formed table comes back exactly: the same header, rows and
line numbers, whatever its line endings, BOM and comment lines.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from workflow_scripts.errors import InputError
from workflow_scripts.ingest.validate import check_manifest, check_participants
from workflow_scripts.io.abundance import check_values, read_abundance
from workflow_scripts.io.tables import read_raw, read_table
from workflow_scripts.io.taxonomy import read_taxonomy

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

# Names and cells chosen to collide: duplicates, empties, the reserved _line, quotes, delimiters.
NAMES = st.sampled_from(["participant_id", "household_id", "site", "status", "sex", "age", "bmi", "edss",
                         "dmt", "disease_course", "sample_id", "feature_id", "taxonomy", "S1", "S2", "",
                         " ", "_line", "#OTU ID", "a b", "NA", "\ufeffsite", "x\"y", "é"])
CELLS = st.sampled_from(["", "NA", "0", "1", "2.5", "-1", "1e3", "nan", "inf", "MS", "HHC", "F", "M", "40",
                         "P1", "P1", "H1", "k__Bacteria; g__Blautia", "\"quoted\"", "\"", "a,b", "a\tb",
                         "#comment", " padded ", "é", "Control", "0x1"])


@st.composite
def raw_files(draw):
    """Bytes of a delimited file: random header and rows, optional BOM, CRLF, comments, blank lines."""
    delimiter = draw(st.sampled_from(["\t", ","]))
    header = draw(st.lists(NAMES, min_size=0, max_size=6))
    rows = draw(st.lists(st.lists(CELLS, min_size=0, max_size=7), min_size=0, max_size=6))
    lines = [delimiter.join(header)] if header or draw(st.booleans()) else []
    lines += [delimiter.join(row) for row in rows]
    for _ in range(draw(st.integers(0, 2))):
        lines.insert(draw(st.integers(0, len(lines))), draw(st.sampled_from(["# a comment", "", "#", "  "])))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + (newline if draw(st.booleans()) else "")
    data = text.encode("utf-8")
    if draw(st.booleans()):
        data = b"\xef\xbb\xbf" + data
    if draw(st.integers(0, 9)) == 0:
        data += b"\xff\xfe"  # not UTF-8
    suffix = ".tsv" if delimiter == "\t" else ".csv"
    return data, suffix


def _encode(draw, lines):
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    data = (newline.join(lines) + newline).encode("utf-8")
    return (b"\xef\xbb\xbf" + data) if draw(st.booleans()) else data


@st.composite
def metadata_files(draw, required):
    """A participants table or manifest: the required columns, shuffled, plus extras that may repeat them."""
    extras = draw(st.lists(st.sampled_from(list(required) + ["bmi", "edss", "dmt", "disease_course", "snfl",
                                                             "collection_date", "disease_duration",
                                                             "age_at_onset", ""]), max_size=3))
    header = draw(st.permutations(list(required) + extras))
    rows = draw(st.lists(st.lists(CELLS, min_size=len(header), max_size=len(header)), max_size=5))
    return _encode(draw, ["\t".join(header)] + ["\t".join(r) for r in rows]), ".tsv"


IDS = st.sampled_from(["S1", "S2", "S3", "S1", "f1", "S 4", ""])
NUMBERS = st.sampled_from(["0", "1", "3", "10", "0.25", "0.5", "1.3", "55", "100", "250", "-1", "NA", "", "x"])


@st.composite
def abundance_files(draw):
    """A features x samples table: valid, duplicated or empty sample names; counts, fractions, junk."""
    samples = draw(st.lists(IDS, max_size=4))
    rows = draw(st.lists(st.tuples(st.sampled_from(["f1", "f2", "f3", "f1", "#f4"]),
                                   st.lists(NUMBERS, min_size=len(samples), max_size=len(samples))),
                         max_size=4))
    lines = ["\t".join(["feature_id"] + samples)] + ["\t".join([f] + cells) for f, cells in rows]
    return _encode(draw, lines), ".tsv"


@st.composite
def good_tables(draw):
    """A well-formed table (unique names, equal-length rows, no quoting needed) and how it was written."""
    names = draw(st.lists(st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,8}", fullmatch=True), min_size=1,
                          max_size=5, unique=True))
    names = [n for n in names if n != "_line"] or ["id"]
    cell = st.from_regex(r"[A-Za-z0-9_.;| -]{0,10}", fullmatch=True).map(str.strip)
    rows = draw(st.lists(st.lists(cell, min_size=len(names), max_size=len(names)), min_size=0, max_size=6))
    rows = [r for r in rows if any(r) and not r[0].startswith("#")]
    return names, rows, draw(st.sampled_from(["\n", "\r\n"])), draw(st.booleans()), \
        draw(st.lists(st.booleans(), min_size=len(rows) + 1, max_size=len(rows) + 1))


def _write(tmp_path, data: bytes, suffix: str):
    path = tmp_path / f"table{suffix}"
    path.write_bytes(data)
    return path


@SETTINGS
@given(raw_files())
def test_read_raw_returns_a_table_or_raises_input_error(tmp_path, file):
    data, suffix = file
    path = _write(tmp_path, data, suffix)
    try:
        raw = read_raw(path, hash_header=True)
    except InputError as err:
        assert err.problems and all(str(p).startswith(str(path)) for p in err.problems)
        return
    assert raw.header and all(raw.header) and len(set(raw.header)) == len(raw.header)
    assert "_line" not in raw.header and not raw.header[0].startswith("\ufeff")
    assert all(len(row) == len(raw.header) for row in raw.rows)
    assert raw.lines == sorted(set(raw.lines)) and all(1 <= n <= data.count(b"\n") + 1 for n in raw.lines)


@SETTINGS
@given(good_tables())
def test_well_formed_tables_come_back_exactly(tmp_path, table):
    names, rows, newline, bom, comments = table
    lines, expected_lines = [], []
    for i, row in enumerate([names] + rows):
        if comments[i]:
            lines.append("# note")
        lines.append("\t".join(row))
        if i:
            expected_lines.append(len(lines))
    data = ("\ufeff" if bom else "") + newline.join(lines) + newline
    path = _write(tmp_path, data.encode("utf-8"), ".tsv")
    frame = read_table(path)
    assert list(frame.columns) == names + ["_line"]
    expected = [[None if v in ("", "NA") else v for v in row] for row in rows]
    assert frame[names].to_numpy().tolist() == expected
    assert frame["_line"].tolist() == expected_lines


@SETTINGS
@given(st.one_of(raw_files(), abundance_files()), st.sampled_from(["counts", "relative"]))
def test_abundance_reader_returns_a_table_or_raises_input_error(tmp_path, file, kind):
    data, suffix = file
    path = _write(tmp_path, data, suffix)
    try:
        table = read_abundance(path)
        values, scale = check_values(table, kind)
    except InputError as err:
        assert err.problems
        return
    assert table.sample_ids and table.feature_ids
    assert values.shape == (len(table.feature_ids), len(table.sample_ids)) and np.isfinite(values).all()
    assert scale in ("counts", "proportions", "percentages")


@SETTINGS
@given(raw_files())
def test_taxonomy_reader_returns_lineages_or_raises_input_error(tmp_path, file):
    data, suffix = file
    path = _write(tmp_path, data, suffix)
    try:
        lineages = read_taxonomy(path)
    except InputError as err:
        assert err.problems
        return
    assert isinstance(lineages, pd.Series) and lineages.index.is_unique


@SETTINGS
@given(st.one_of(raw_files(), metadata_files(("participant_id", "household_id", "site", "status", "sex", "age")),
                 metadata_files(("sample_id", "participant_id"))))
def test_participant_and_manifest_rules_never_crash(tmp_path, file):
    data, suffix = file
    path = _write(tmp_path, data, suffix)
    try:
        frame = read_table(path)
    except InputError:
        return
    problems, typed = check_participants(frame, path, "MS", "HHC")
    assert all(p.file == str(path) for p in problems)
    for known in (None, {"P1", "H1"}):
        for kind in ("stool", "blood"):
            problems, _ = check_manifest(frame, path, known, kind, "participants.tsv")
            assert all(p.file == str(path) for p in problems)


@pytest.mark.parametrize("text", ["", "\ufeff", "\r\n\r\n", "# only a comment\n", "\t\t\n"])
def test_empty_files_are_one_problem(tmp_path, text):
    path = _write(tmp_path, text.encode("utf-8"), ".tsv")
    with pytest.raises(InputError) as caught:
        read_raw(path)
    [problem] = caught.value.problems
    assert "is empty (no header row)" in problem.message
