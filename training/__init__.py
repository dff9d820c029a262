"""Pure-torch training package (model, data, checkpoints, train loop); no Dagster imports."""
