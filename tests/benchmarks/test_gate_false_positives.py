"""The gate false-positive benchmark runs on a few days of both datasets and reports its
figures (in-process: it starts nothing, so it stays in the fast suite)."""

import re
import sys

from benchmarks import gate_false_positives


def test_the_false_positive_benchmark_reports_rate_and_margins(monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gate_false_positives", "--days", "6", "--scale", "0.5"])
    gate_false_positives.main()
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("example events: 6 clean days, 0 blocked")
    assert any(line.startswith("marketplace orders: 6 clean days, 0 blocked") for line in lines)
    for gate in ("category_stability", "category_cardinality", "numeric_scale", "content_replay"):
        assert sum(1 for line in lines if line.strip().startswith(gate)) == 2, gate
    assert lines[-2] == "false_positive_rate=0.000 (0/12)"
    assert re.fullmatch(r"ratio=(\d+\.\d\d|inf)", lines[-1])
