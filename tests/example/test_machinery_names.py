"""Pins the example's names: the machinery never names the example's source columns or event
kinds; it reads them from the declared contract (`contract.source.SOURCE`), so a team with
another upstream table edits the contract, the feature logic and the model-input declaration,
not the gates, backends, sensors or scripts.

The forbidden words are the example's own, derived from its declaration (every column and kind
of `CLICK_STREAM`), whatever the project's `SOURCE` is: a team's names are its own to use. Code may
use one neither as an identifier nor inside a string literal (f-strings included). Prose
(comments and docstrings) may say "a click" or "the price", but not name a column whose name
is an identifier (one with an underscore, such as the time column): that is a code reference.

Exemptions, each with its reason:
- the example's data generators (`scripts/synthetic_events.py`, and
  `scripts/synthetic_examples.py` for the trainer's inputs at volume), the feature logic
  (`assets/features/logic.py`) and its plain-SQL twin that the features benchmark times
  (`assets/features/reference_sql.py`) are example code by design;
- the model side (`training/`, `assets/model/`, `assets/guard/`) reads every column from the
  model-input declaration and is scanned like the rest; only the model-quality benchmark's
  oracle (the example generator's true logits) may name the published feature tables' columns
  (which repeat some source names: a user id, a device), never a source-only column or an
  event kind;
- words the machinery's own vocabulary shares with the example: `device`, the compute device a
  trainer runs on, and `event_type`, Dagster's event-log record type, each where it occurs.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

from assets.features.logic import CLICK_STREAM_FEATURES
from contract.source import CLICK_STREAM

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("assets", "resources", "sensors", "training", "scripts", "benchmarks")
EXAMPLE_CODE = {
    "scripts/synthetic_events.py",
    "scripts/synthetic_examples.py",
    "assets/features/logic.py",
    "assets/features/reference_sql.py",
}
EXAMPLE_ORACLE = ("benchmarks/model_quality.py",)
# The machinery's own words that the example's names happen to repeat, and where they occur.
SHARED_VOCABULARY = {
    "device": (
        "training/",
        "assets/model/model_checkpoint.py",
        *EXAMPLE_ORACLE,
        "assets/slo/cost.py",
        "resources/registry/reproduce.py",
        "benchmarks/training.py",
        "benchmarks/training_volume.py",
    ),
    "event_type": (
        "assets/slo/runs.py",
        "benchmarks/backfill.py",
        "benchmarks/daily_vs_backfill.py",
    ),
}


def forbidden_words() -> set[str]:
    return {column.name for column in CLICK_STREAM.columns} | set(CLICK_STREAM.kinds)


def feature_columns() -> set[str]:
    return {name for table in CLICK_STREAM_FEATURES for name in table.schema.names}


def modules() -> list[str]:
    paths = [ROOT / "definitions.py"]
    paths += [path for top in SCANNED for path in sorted((ROOT / top).rglob("*.py"))]
    names = [path.relative_to(ROOT).as_posix() for path in paths]
    return [name for name in names if name not in EXAMPLE_CODE]


def allowed_in(module: str) -> set[str]:
    allowed: set[str] = set()
    if module.startswith(EXAMPLE_ORACLE):
        allowed |= feature_columns()
    allowed |= {word for word, paths in SHARED_VOCABULARY.items() if module.startswith(paths)}
    return allowed


def _prose_strings(source: str) -> set[tuple[int, int]]:
    """Where each docstring (a string standing alone as a statement) starts."""
    return {
        (node.lineno, node.col_offset)
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Expr)
        and isinstance(node.value, ast.Constant)
        and isinstance(node.value.value, str)
    }


def example_names(source: str, words: set[str]) -> list[tuple[int, str, str]]:
    """(line, word, token) for each identifier equal to a word and each string literal that
    holds a word as a whole word (underscores count as part of a word); in comments and
    docstrings, only the words with an underscore."""
    patterns = {
        word: re.compile(rf"(?<![A-Za-z0-9_]){re.escape(word)}(?![A-Za-z0-9_])") for word in words
    }
    prose = _prose_strings(source)
    found = []
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.NAME and token.string in words:
            found.append((token.start[0], token.string, token.string))
        elif token.type in (tokenize.STRING, tokenize.COMMENT):
            is_prose = token.type == tokenize.COMMENT or token.start in prose
            for word, pattern in patterns.items():
                if is_prose and "_" not in word:
                    continue
                if pattern.search(token.string):
                    found.append((token.start[0], word, token.string[:60]))
    return found


def test_the_forbidden_words_come_from_the_contract():
    words = forbidden_words()
    assert CLICK_STREAM.time_column in words and CLICK_STREAM.kind_column in words
    assert set(CLICK_STREAM.kinds) <= words and set(CLICK_STREAM.key) <= words


def test_the_scanner_finds_code_names_and_identifiers_in_prose():
    column = CLICK_STREAM.time_column
    kind = CLICK_STREAM.label.positive_kind
    words = {column, kind}
    code = f'x = {column}\ny = "{column} >= 1"\nz = f"a {{b}} {kind}"\n'
    assert [line for line, _, _ in example_names(code, words)] == [1, 2, 3]
    prose = f'"""A {kind} and {column}."""\n# one {kind}, one {column}\n'
    assert [(line, word) for line, word, _ in example_names(prose, words)] == [
        (1, column),
        (2, column),
    ]
    assert example_names(f'x = "{column}s" + {column}_count\n', words) == []


@pytest.mark.parametrize("module", modules())
def test_machinery_names_no_example_column_or_kind(module: str):
    words = forbidden_words() - allowed_in(module)
    found = example_names((ROOT / module).read_text(), words)
    assert not found, (
        f"{module} names the example's source columns or event kinds: "
        + "; ".join(f"line {line}: {word!r} in {token!r}" for line, word, token in found)
        + ". Read them from the source contract (contract/source.py) instead, or pass them in."
    )


def test_the_model_side_is_scanned_without_the_feature_tables_columns():
    """The model-input declaration names the model's columns, so the trainer, the model assets
    and the guard may not: only the compute device is their own word."""
    for module in ("training/data.py", "training/evaluate.py", "assets/model/evaluation.py"):
        assert allowed_in(module) <= {"device"}, module
    assert allowed_in("assets/guard/asset.py") == set()
    assert feature_columns() & forbidden_words() <= allowed_in(EXAMPLE_ORACLE[0])
