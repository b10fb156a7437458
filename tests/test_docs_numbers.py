"""Every result table of README.md, docs/REPORT.md and docs/BENCHMARKS.md is written from its
results file by experiments/docs_tables.py and checked cell by cell against it, and every figure
of their running text is a link to its file and key, checked against the value there. A moved
row, a swapped accuracy or a changed speed-up fails."""

import re
import shutil

import pytest
from helpers import ROOT

from experiments.docs_check import BLOCK, DOCS, FIGURE_LINK, check, lookup, shown_by

# A table whose header speaks of accuracy, seconds or a ratio shows results: it must be written
# from its file, inside a table block.
RESULT_HEADER = re.compile(r"acc\.|accuracy| s / | s |seconds|/ peer|%", re.IGNORECASE)


def scratch_copy(tmp_path):
    """The docs and the results they read, in a folder of their own."""
    for name in DOCS:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "results", tmp_path / "results")
    return tmp_path


def table_lines(text: str, name: str) -> tuple[int, list[str]]:
    """The offset of the table block `name` and its lines."""
    match = next(m for m in BLOCK.finditer(text) if m.group(1) == name)
    return match.start(3), match.group(3).splitlines()


def edited(path, name: str, edit) -> None:
    text = path.read_text()
    start, lines = table_lines(text, name)
    old = "\n".join(lines)
    path.write_text(text[:start] + "\n".join(edit(lines)) + text[start + len(old) :])


def test_every_table_and_running_figure_matches_its_file():
    assert check() == []


@pytest.mark.parametrize("doc", DOCS)
def test_each_doc_has_tables_written_from_files(doc):
    assert any(BLOCK.finditer((ROOT / doc).read_text())), f"{doc} has no table written from a results file"


@pytest.mark.parametrize("doc", DOCS)
def test_no_result_table_stands_outside_a_block(doc):
    text = BLOCK.sub("", (ROOT / doc).read_text())
    headers = [
        line
        for line, rule in zip(text.splitlines(), text.splitlines()[1:], strict=False)
        if line.strip().startswith("|") and re.match(r"^\s*\|\s*:?-", rule)
    ]
    assert [h for h in headers if RESULT_HEADER.search(h)] == []


def swap_rows(lines, first: int, second: int):
    lines = list(lines)
    lines[first], lines[second] = lines[second], lines[first]
    return lines


def set_cell(lines, row_label: str, column: int, value: str):
    out = []
    for line in lines:
        cells = line.split("|")
        if len(cells) > column + 1 and cells[1].strip() == row_label:
            cells[column + 1] = f" {value} "
        out.append("|".join(cells))
    return out


def cell(lines, row_label: str, column: int) -> str:
    return next(line.split("|")[column + 1].strip() for line in lines if line.split("|")[1].strip() == row_label)


def test_a_moved_row_is_found(tmp_path):
    root = scratch_copy(tmp_path)
    edited(root / "docs/REPORT.md", "table_one", lambda lines: swap_rows(lines, 2, 3))  # mlp's row below cc's
    found = check(root=root)
    assert found
    assert all("table_one" in f for f in found)
    assert any("(`mlp`)" in f or "(`cc`)" in f for f in found)


def test_a_swapped_accuracy_is_found(tmp_path):
    """The sprint given the speedrun's accuracy."""
    root = scratch_copy(tmp_path)
    readme = root / "README.md"
    _, lines = table_lines(readme.read_text(), "race")
    speedrun = cell(lines, "speedrun", 1)
    edited(readme, "race", lambda lines: set_cell(lines, "sprint", 1, speedrun))
    found = check(root=root)
    assert len(found) == 1
    assert "(sprint), cell 2" in found[0]
    assert speedrun in found[0]


def test_a_changed_speedup_is_found(tmp_path):
    root = scratch_copy(tmp_path)
    readme = root / "README.md"
    edited(readme, "race", lambda lines: set_cell(lines, "sprint", 5, "0.77"))
    found = check(root=root)
    assert len(found) == 1
    assert "(sprint), cell 6: shows '0.77'" in found[0]


def test_a_changed_running_figure_is_found(tmp_path):
    root = scratch_copy(tmp_path)
    report = root / "docs/REPORT.md"
    text = report.read_text()
    match = FIGURE_LINK.search(text)
    figure = match.group(1).split(" ± ")[0]
    wrong = f"{float(figure.replace(',', '')) + 0.37:.2f}"
    report.write_text(text[: match.start(1)] + wrong + text[match.start(1) + len(figure) :])
    found = check(root=root)
    assert len(found) == 1
    assert wrong in found[0]


def test_lookup_picks_list_entries_by_model_name_or_run():
    data = {"rows": [{"model": "cc", "x": 0.5}, {"name": "sprint", "x": 0.25}, {"run": "mlp-h500", "x": 1}]}
    assert lookup(data, "rows.cc.x") == 0.5
    assert lookup(data, "rows.sprint.x") == 0.25
    assert lookup(data, "rows.mlp-h500.x") == 1
    assert lookup(data, "rows.cnn.x") is None


def test_a_figure_is_shown_rounded_as_a_fraction_or_in_percent():
    assert shown_by("97.97", 0.97970001)
    assert shown_by("0.98", 0.9797)
    assert not shown_by("97.96", 0.9797)
    assert not shown_by("97.97", None)
