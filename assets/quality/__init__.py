"""Quality gates:
gates        the row-level and volume gates as pure functions (observed value, threshold, message)
history      gates against the asset's own approved history: label rate, event mix, drift
gate_config  the gate thresholds as run config, with defaults
deadline     the check that flags a daily partition that has not landed by its deadline
"""
