"""The docs' result tables, written from the results files they show, and the figures of their
running text, each checked against the file it cites.

A table in README.md or docs/*.md sits between two markers that name its function in
experiments/docs_tables.py and the files it reads:

    <!-- table: table_one results/table.json -->
    | ... written by table_one(results/table.json) ... |
    <!-- end table -->

`python -m experiments.docs_check` rewrites every such block; `--check` rewrites nothing and
names each cell that differs from what its files give (tests/test_docs_numbers.py runs it). A
figure in running text is a link to its file and a key in it, which the check reads:

    [97.97 ± 0.48](../results/table.json#rows.cnn_aux.test_accuracy)

Each segment of the key picks a field, or in a list the entry whose model, name or run it
names; "a ± b" reads the key's `_mean` and `_std`. A figure may be shown as the fraction the
file holds or in percent, rounded to the digits it shows."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from .docs_tables import TABLES

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/REPORT.md", "docs/BENCHMARKS.md")
BLOCK = re.compile(r"<!-- table: (\w+)((?: (?!-->)\S+)*) -->\n(.*?)<!-- end table -->\n", re.DOTALL)
FIGURE_LINK = re.compile(r"\[([-+]?\d[\d,.]*(?: ± \d[\d.]*)?)\]\(((?:\.\./)?results/[^)#\s]+)#([^)\s]+)\)")


def rendered(name: str, files: list[str], doc: Path, root: Path) -> str:
    if name not in TABLES:
        raise ValueError(f"{doc.name}: no table generator {name!r}; choose from {', '.join(TABLES)}")
    data = [json.loads((root / f).read_text()) for f in files]
    return "\n".join(TABLES[name](*data)) + "\n"


def render(doc: Path, root: Path = ROOT) -> tuple[str, list[str]]:
    """`doc`'s text with every table block written from its files, and a line for each cell
    that differs from what stood there."""
    text, found = doc.read_text(), []

    def replace(match):
        name, files = match.group(1), match.group(2).split()
        line = text.count("\n", 0, match.start()) + 2
        missing = [f for f in files if not (root / f).is_file()]
        if missing:
            found.append(f"{doc.name}:{line}: {name}: {', '.join(missing)} is not in the checkout")
            return match.group(0)
        new = rendered(name, files, doc, root)
        found.extend(cell_differences(match.group(3), new, f"{doc.name}:{line}: {name}"))
        return f"<!-- table: {name}{match.group(2)} -->\n{new}<!-- end table -->\n"

    return BLOCK.sub(replace, text), found


def cell_differences(old: str, new: str, where: str) -> list[str]:
    """Each cell (row, column) of the table as it stands that the files do not give."""
    old_rows, new_rows = old.splitlines(), new.splitlines()
    found = []
    for i in range(max(len(old_rows), len(new_rows))):
        a = old_rows[i] if i < len(old_rows) else ""
        b = new_rows[i] if i < len(new_rows) else ""
        if a == b:
            continue
        a_cells, b_cells = a.strip("|").split("|"), b.strip("|").split("|")
        label = b_cells[0].strip() or a_cells[0].strip()
        for k in range(max(len(a_cells), len(b_cells))):
            shown = a_cells[k].strip() if k < len(a_cells) else ""
            given = b_cells[k].strip() if k < len(b_cells) else ""
            if shown != given:
                found.append(
                    f"{where}, line {i + 1} ({label}), cell {k + 1}: shows {shown!r}, the file gives {given!r}"
                )
    return found


def lookup(data, key: str):
    for segment in key.split("."):
        if isinstance(data, list):
            ids = ("model", "name", "run")
            data = next((e for e in data if any(str(e.get(i)) == segment for i in ids)), None)
        elif isinstance(data, dict):
            data = data.get(segment)
        if data is None:
            return None
    return data


def shown_by(figure: str, value) -> bool:
    """Whether `figure` is `value` rounded to the digits it shows, as a fraction or in percent."""
    if not isinstance(value, (int, float)):
        return False
    digits = len(figure.split(".")[1]) if "." in figure else 0
    target, tolerance = float(figure.replace(",", "")), 0.5 * 10**-digits + 1e-9
    return abs(value - target) <= tolerance or abs(100 * value - target) <= tolerance


def figure_mismatches(doc: Path, root: Path = ROOT) -> list[str]:
    """Each running-text figure of `doc` whose file does not hold it at its key."""
    found = []
    text = doc.read_text()
    for match in FIGURE_LINK.finditer(text):
        figure, file, key = match.groups()
        line = text.count("\n", 0, match.start()) + 1
        path = (doc.parent / file).resolve() if file.startswith("../") else root / file
        if not path.is_file():
            found.append(f"{doc.name}:{line}: {file} is not in the checkout")
            continue
        data = json.loads(path.read_text())
        parts = figure.split(" ± ")
        values = [lookup(data, key)] if len(parts) == 1 else [lookup(data, f"{key}_mean"), lookup(data, f"{key}_std")]
        if not all(shown_by(p, v) for p, v in zip(parts, values, strict=True)):
            found.append(f"{doc.name}:{line}: {figure} is not {file}#{key} ({', '.join(map(str, values))})")
    return found


def check(docs=DOCS, root: Path = ROOT) -> list[str]:
    found = []
    for name in docs:
        found += render(root / name, root)[1] + figure_mismatches(root / name, root)
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Write the docs' result tables from their results files.")
    parser.add_argument("--check", action="store_true", help="write nothing; list each cell that differs")
    args = parser.parse_args(argv)
    from keras_models.cli.quiet import install

    install()  # the networks table builds models: TensorFlow's start-up lines are no part of its answer
    try:
        if args.check:
            found = check()
        else:
            from keras_models.core.files import atomic_write_text

            found = []
            for name in DOCS:
                text, differ = render(ROOT / name)
                atomic_write_text(ROOT / name, text)
                # What was written is what the files give; a file that is missing left its table as it was.
                found += [f for f in differ if f.endswith("is not in the checkout")] + figure_mismatches(ROOT / name)
    except (ValueError, OSError) as e:  # an unknown table name, an unreadable results file
        print(f"docs_check: error: {e}", file=sys.stderr)
        return 2
    for line in found:
        print(line)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
