"""Daily feature tables: pure computations (`logic`) and the Dagster assets that publish them."""
