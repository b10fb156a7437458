"""Every figure in README's and REPORT's result tables comes from a results file committed under
`results/`, named in a marker line right above the table:

    <!-- numbers: results/table.md results/fast/table.md -->

A table whose header speaks of accuracy, seconds or a ratio, or that shows a mean ± std, must
carry one. Each number in its
cells (but the first column and a `what` column, which name and describe) must be a number of
one of the named files, rounded to the digits the table shows, as a fraction or in percent."""

import json
import re
from pathlib import Path

import pytest
from helpers import ROOT

DOCS = ("README.md", "docs/REPORT.md")
MARKER = re.compile(r"<!--\s*numbers:\s*(.+?)\s*-->")
NUMBER = re.compile(r"(?<![\w.])-?\d[\d,]*(?:\.\d+)?")
# What a result table's header names: it must say where its numbers come from.
RESULT_HEADER = re.compile(r"acc\.|accuracy| s / | s |seconds|/ peer|%", re.IGNORECASE)
DESCRIPTIVE = {"what", "levers", "how"}


def tables(text: str):
    """(line number, marker files or None, header cells, body rows) of each markdown table."""
    lines = [line.strip() for line in text.splitlines()]  # a table may be indented in a list item
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and re.match(r"^\|\s*:?-", lines[i + 1]):
            start = i
            above = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
            found = MARKER.search(above)
            header = cells(lines[i])
            body = []
            i += 2
            while i < len(lines) and lines[i].startswith("|"):
                body.append(cells(lines[i]))
                i += 1
            yield start + 1, found.group(1).split() if found else None, header, body
        else:
            i += 1


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def numbers(text: str) -> list[str]:
    text = re.sub(r"`[^`]*`", " ", text)  # flags, names and commands, not figures
    return [n.replace(",", "") for n in NUMBER.findall(text.replace("**", ""))]


def file_values(path: Path) -> set[float]:
    text = path.read_text()
    values = {float(n) for n in numbers(text.replace("`", ""))}
    if path.suffix == ".json":  # numbers written by json, in full precision
        values |= {float(n) for n in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", json.dumps(json.loads(text)))}
    return values


def shown_by(figure: str, values: set[float]) -> bool:
    """Whether `figure` (as the table prints it) is one of `values` rounded to its digits, as it
    stands or in percent."""
    digits = len(figure.split(".")[1]) if "." in figure else 0
    target = float(figure)
    tolerance = 0.5 * 10**-digits + 1e-9
    return any(abs(v - target) <= tolerance or abs(100 * v - target) <= tolerance for v in values)


def mismatches(doc: Path, root: Path = ROOT) -> list[str]:
    """Each figure of `doc`'s result tables that its named files do not hold, and each result
    table with no marker or a marker naming a missing file."""
    found = []
    for line, files, header, body in tables(doc.read_text()):
        if files is None:
            if RESULT_HEADER.search(" ".join(header)) or any("±" in c for row in body for c in row):
                found.append(f"{doc.name}:{line}: a result table names no results file")
            continue
        if files == ["none"]:
            continue
        paths = [root / f for f in files]
        missing = [str(p.relative_to(root)) for p in paths if not p.is_file()]
        if missing:
            found.append(f"{doc.name}:{line}: {', '.join(missing)} is not in the checkout")
            continue
        values = set().union(*(file_values(p) for p in paths))
        checked = [k for k, name in enumerate(header) if k > 0 and name.lower() not in DESCRIPTIVE]
        for row in body:
            for k in checked:
                for figure in numbers(row[k]) if k < len(row) else []:
                    if not shown_by(figure, values):
                        found.append(f"{doc.name}:{line}: {row[0]} | {header[k]}: {figure} is not in {' '.join(files)}")
    return found


@pytest.mark.parametrize("doc", DOCS)
def test_every_figure_of_a_result_table_is_in_its_results_file(doc):
    assert mismatches(ROOT / doc) == []


@pytest.mark.parametrize("doc", DOCS)
def test_the_docs_have_result_tables_to_check(doc):
    marked = [files for _, files, _, body in tables((ROOT / doc).read_text()) if files and files != ["none"]]
    assert marked, f"{doc} has no result table with a marker"


def test_a_changed_figure_is_found(tmp_path):
    """A scratch copy of README with one figure of its first checked table changed fails."""
    text = (ROOT / "README.md").read_text()
    marker = MARKER.search(text)
    table_start = text.index("\n|", marker.end())
    row_start = text.index("\n|", text.index("\n|", table_start + 1) + 1)  # past header and rule
    row_end = text.index("\n", row_start + 1)
    row = text[row_start:row_end]
    first = re.search(r"\d+\.\d\d", row.split("|", 2)[2])
    changed = row[: len(row) - len(row.split("|", 2)[2])] + row.split("|", 2)[2].replace(
        first.group(0), f"{float(first.group(0)) + 0.37:.2f}", 1
    )
    scratch = tmp_path / "README.md"
    scratch.write_text(text[:row_start] + changed + text[row_end:])
    found = mismatches(scratch)
    assert len(found) == 1
    assert f"{float(first.group(0)) + 0.37:.2f} is not in" in found[0]
    assert mismatches(ROOT / "README.md") == []
