"""Quality gates:
gates        the row-level and volume gates as pure functions (observed value, threshold, message)
columns      the day's rows as the gates read them; the value counts every categorical gate reads
tally        the counts the row-level gates judge, added up batch by batch for a streamed table
history      gates against the asset's own approved history: label rate, event mix, drift
distribution gates on a changed distribution: categorical PSI, distinct-count collapse, numeric
             location and scale, calibrated from the history's own day-over-day spread
replay       the content-identity gate: a day whose rows repeat an earlier day's rows
gate_config  the gate thresholds as run config, with defaults
deadline     the check that flags a daily partition that has not landed by its deadline
"""
