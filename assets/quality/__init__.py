"""Quality gates: the checks as pure functions, their thresholds as run config, and the
deadline check that flags a daily partition that has not landed."""
