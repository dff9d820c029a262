"""Finds assertions that bound a measured duration from above by a constant (a stopwatch).

A test that asserts "this took at most N seconds" fails a correct product on a loaded machine.
What counts as measured: a clock read (time.time/monotonic/perf_counter, datetime.now), a
timestamp read from a record or event (`.timestamp`, `.start_time`, `.end_time`, ...), a
reported duration looked up by a name that says so (`...wait_seconds`, `elapsed`, ...), a call
of a function of the same module that returns one of these, and any name assigned from them.

An ordering comparison is flagged when its smaller side holds a measured term and its larger
side holds a term that is not measured (a literal, a setting, a constant): `end - start <= 5`,
`started <= enqueued + MARGIN`. Left alone: orderings of measured values only (`dequeued <=
started`), lower bounds (`waited >= HOLD`: a slow machine only makes them truer), equality,
and wait loops (`while time.monotonic() < deadline`, no assert).
"""

import ast
import re
from dataclasses import dataclass
from pathlib import Path

CLOCK_CALLS = {"time", "monotonic", "perf_counter", "time_ns", "monotonic_ns", "now", "utcnow"}
TIMESTAMP_ATTRIBUTES = {
    "timestamp",
    "start_time",
    "end_time",
    "end_timestamp",
    "create_timestamp",
    "update_timestamp",
    "enqueued_timestamp",
}
# A parsed log entry's time (scripts/dagster_processes.py's daemon_log), or a record's.
TIMESTAMP_KEYS = TIMESTAMP_ATTRIBUTES | {"at"}
# Names and keys of durations a product reports (the SLO asset's metadata, a benchmark's
# outcome): measured, even when the test did not hold the stopwatch itself.
MEASURED_NAME = re.compile(
    r"(elapsed|latency|waited|wall)(_s|_seconds)?$|_(wait|duration|to_start|end_to_end)(_s|_seconds)$"
)
# ...but a limit named like one (`max_schedule_to_start_seconds`) is a setting.
LIMIT_NAME = re.compile(r"^(max|min|limit|timeout)_", re.IGNORECASE)
ORDERINGS = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)
PASS_THROUGH = {"min", "max", "sum", "float", "int", "round", "abs", "sorted", "median", "mean"}


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    source: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.source}"


def _measured_name(name: str) -> bool:
    return bool(MEASURED_NAME.search(name)) and not LIMIT_NAME.match(name)


def _terms(node: ast.expr) -> list[ast.expr]:
    """The additive terms of an expression (a - b + 3 -> a, b, 3)."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        return _terms(node.left) + _terms(node.right)
    return [node]


def _constant(node: ast.expr) -> bool:
    """A literal, a CONSTANT, a setting looked up (`policy["interval"]`, `config.margin`) or a
    timedelta: what a stopwatch is held against. An unknown variable or call is not."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, (int, float))
    if isinstance(node, ast.Name):
        return node.id.isupper()
    if isinstance(node, (ast.Subscript, ast.Attribute)):
        return True
    if isinstance(node, ast.Call):
        name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
        return name == "timedelta"
    if isinstance(node, ast.BinOp):
        return _constant(node.left) and _constant(node.right)
    if isinstance(node, ast.UnaryOp):
        return _constant(node.operand)
    return False


class _Measured:
    """Which expressions of one module are measured (see the module docstring)."""

    def __init__(self, tree: ast.Module):
        self.names: set[str] = set()
        self.functions: set[str] = set()
        # Taint spreads through assignments, loops and returns until nothing changes.
        changed = True
        while changed:
            changed = False
            for node in ast.walk(tree):
                targets: list[ast.expr] = []
                if isinstance(node, ast.Assign) and self.holds(node.value):
                    targets = node.targets
                elif isinstance(node, (ast.AnnAssign, ast.AugAssign)) and node.value:
                    targets = [node.target] if self.holds(node.value) else []
                elif isinstance(node, (ast.For, ast.comprehension)) and self.holds(node.iter):
                    targets = [node.target]
                elif (
                    isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                    and node.name not in self.functions
                    and any(
                        isinstance(ret, ast.Return) and ret.value and self.holds(ret.value)
                        for ret in ast.walk(node)
                    )
                ):
                    self.functions.add(node.name)
                    changed = True
                for target in targets:
                    for name in ast.walk(target):
                        if isinstance(name, ast.Name) and name.id not in self.names:
                            self.names.add(name.id)
                            changed = True

    def holds(self, node: ast.AST) -> bool:
        """Whether the expression's value carries a measured value."""
        if isinstance(node, ast.Name):
            return node.id in self.names or _measured_name(node.id)
        if isinstance(node, ast.Attribute):
            return node.attr in TIMESTAMP_ATTRIBUTES or _measured_name(node.attr)
        if isinstance(node, ast.Subscript):
            key = node.slice
            if (
                isinstance(key, ast.Constant)
                and isinstance(key.value, str)
                and (key.value in TIMESTAMP_KEYS or _measured_name(key.value))
            ):
                return True
            return self.holds(node.value)
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_CALLS | TIMESTAMP_ATTRIBUTES:
                return True
            if isinstance(func, ast.Name) and func.id in self.functions:
                return True
            # min(times), float(stamp), statistics.median(gaps): the value passes through;
            # any other call (a count of passes between two timestamps) makes something new.
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
            if name in PASS_THROUGH:
                return any(self.holds(arg) for arg in node.args)
            return False
        if isinstance(node, (ast.Lambda, ast.Compare, ast.BoolOp)):
            return False
        return any(self.holds(child) for child in ast.iter_child_nodes(node))


def _bounds_from_above(measured: _Measured, smaller: ast.expr, larger: ast.expr) -> bool:
    return any(measured.holds(term) for term in _terms(smaller)) and any(
        not measured.holds(term) and _constant(term) for term in _terms(larger)
    )


def stopwatch_assertions(source: str, path: str = "<string>") -> list[Finding]:
    """The asserts in `source` that bound a measured duration from above by a constant."""
    tree = ast.parse(source)
    measured = _Measured(tree)
    findings = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assert):
            continue
        for compare in ast.walk(node.test):
            if not isinstance(compare, ast.Compare):
                continue
            operands = [compare.left, *compare.comparators]
            for left, op, right in zip(operands[:-1], compare.ops, operands[1:], strict=True):
                if not isinstance(op, ORDERINGS):
                    continue
                smaller, larger = (
                    (left, right)
                    if isinstance(op, (ast.Lt, ast.LtE))
                    else (
                        right,
                        left,
                    )
                )
                if _bounds_from_above(measured, smaller, larger):
                    findings.append(Finding(path, node.lineno, ast.unparse(node.test)))
                    break
    return findings


def scan(root: Path) -> list[Finding]:
    return [
        finding
        for path in sorted(root.rglob("*.py"))
        for finding in stopwatch_assertions(path.read_text(), str(path.relative_to(root)))
    ]
