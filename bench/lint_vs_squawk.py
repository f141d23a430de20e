#!/usr/bin/env python3
"""Compares pgward-validate lint and squawk on migration histories, statement by statement.

Usage: lint_vs_squawk.py PGWARD_JSON SQUAWK_JSON MIGRATIONS_DIR [--list FAMILY]

Both tools' findings are mapped into shared rule families (FAMILIES below: the one place
the mapping is written) and placed on the statement that holds them, so that a finding
of pgward at a column definition and squawk's at the statement's start count as the same
statement. File-level rules (lock and statement timeouts) count per file. Prints, per
family: statements flagged by pgward, by squawk, by both, only by squawk, only by pgward;
`--list FAMILY` prints the file:line of each disagreement in that family, to read.
"""
import json
import os
import sys
from collections import defaultdict

# family -> (pgward rules, squawk rules, counted per file rather than per statement)
FAMILIES = {
    "lock timeout": ({"missing-lock-timeout"}, {"require-lock-timeout"}, True),
    "create index not concurrently": ({"create-index-not-concurrently"}, {"require-concurrent-index-creation"}, False),
    "drop index not concurrently": ({"drop-index-not-concurrently"}, {"require-concurrent-index-deletion"}, False),
    "foreign key / check without NOT VALID": (
        {"add-foreign-key-without-not-valid", "add-check-without-not-valid"},
        {"adding-foreign-key-constraint", "constraint-missing-not-valid"},
        False,
    ),
    "NOT NULL on existing rows": (
        {"set-not-null", "add-column-not-null-without-default"},
        {"adding-not-nullable-field", "adding-required-field"},
        False,
    ),
    "column type change": ({"alter-column-type"}, {"changing-column-type"}, False),
    "unique / primary key without index": ({"add-constraint-without-using-index"}, {"disallowed-unique-constraint", "adding-serial-primary-key-field"}, False),
    "volatile default": ({"add-column-volatile-default"}, {"adding-field-with-default"}, False),
    "drop column": ({"drop-column"}, {"ban-drop-column"}, False),
    "drop table": ({"drop-table"}, {"ban-drop-table"}, False),
    "rename column": ({"rename-column"}, {"renaming-column"}, False),
    "rename table": ({"rename-table"}, {"renaming-table"}, False),
    "enum value position": ({"enum-add-value-without-position"}, {"require-enum-value-ordering"}, False),
    "timestamptz": ({"prefer-timestamptz"}, {"prefer-timestamp-tz"}, False),
    "bigint keys": ({"prefer-bigint-primary-key"}, {"prefer-bigint-over-int", "prefer-bigint-over-smallint"}, False),
    "text over char": ({"prefer-text-over-char"}, {"ban-char-field"}, False),
    "identifier too long": ({"identifier-too-long"}, {"identifier-too-long"}, False),
    "retry safety": ({"concurrently-without-if-not-exists", "statements-after-commit"}, {"prefer-robust-stmts"}, False),
    "drop default": ({"drop-default-not-null"}, {"ban-drop-default"}, False),
}


def statement_starts(text):
    """1-based line numbers where each top-level statement starts (quotes, dollar quotes
    and comments respected)."""
    starts, i, n, line = [], 0, len(text), 1
    in_stmt = False
    while i < n:
        c = text[i]
        if c == "\n":
            line += 1
            i += 1
            continue
        if text.startswith("--", i):
            j = text.find("\n", i)
            i = n if j < 0 else j
            continue
        if text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            line += text.count("\n", i, j)
            i = j
            continue
        if c.isspace():
            i += 1
            continue
        if not in_stmt:
            starts.append(line)
            in_stmt = True
        if c == ";":
            in_stmt = False
            i += 1
            continue
        if c in "'\"":
            j = i + 1
            while j < n:
                if text[j] == c and text.startswith(c * 2, j):
                    j += 2
                    continue
                if text[j] == c:
                    break
                j += 1
            line += text.count("\n", i, j)
            i = j + 1
            continue
        if c == "$":
            j = text.find("$", i + 1)
            tag = text[i : j + 1] if j > 0 else ""
            if tag and all(ch.isalnum() or ch == "_" for ch in tag[1:-1]):
                k = text.find(tag, j + 1)
                k = n if k < 0 else k + len(tag)
                line += text.count("\n", i, k)
                i = k
                continue
        i += 1
    return starts


def place(starts, line):
    """The statement (its start line) that holds `line`."""
    held = starts[0] if starts else 1
    for s in starts:
        if s <= line:
            held = s
    return held


def main():
    pgward_json, squawk_json, migrations = sys.argv[1:4]
    listed = sys.argv[5] if len(sys.argv) > 5 and sys.argv[4] == "--list" else None
    pgward = json.load(open(pgward_json))["result"]["findings"]
    squawk = json.load(open(squawk_json))
    starts = {}

    def key(file, line, per_file):
        folder = os.path.basename(os.path.dirname(file))
        if per_file:
            return (folder, 0)
        if folder not in starts:
            with open(os.path.join(migrations, folder, "migration.sql"), encoding="utf-8") as f:
                starts[folder] = statement_starts(f.read())
        return (folder, place(starts[folder], line))

    flagged = defaultdict(lambda: (set(), set()))
    for family, (ours, theirs, per_file) in FAMILIES.items():
        for f in pgward:
            if f["rule"] in ours:
                flagged[family][0].add(key(f["file"], f["line"], per_file))
        for f in squawk:
            if f["rule_name"] in theirs:
                # squawk's lines are 0-based.
                flagged[family][1].add(key(f["file"], f["line"] + 1, per_file))
    print(f"{'family':40} {'pgward':>7} {'squawk':>7} {'both':>7} {'only sq':>8} {'only pw':>8}")
    for family in FAMILIES:
        p, s = flagged[family]
        print(f"{family:40} {len(p):7} {len(s):7} {len(p & s):7} {len(s - p):8} {len(p - s):8}")
    if listed:
        p, s = flagged[listed]
        for side, items in (("only squawk", s - p), ("only pgward", p - s)):
            for folder, line in sorted(items):
                print(f"{side}: {folder}/migration.sql:{line}")


if __name__ == "__main__":
    main()
