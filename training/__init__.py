"""Pure-torch training package (model, data, checkpoints, train loop); no Dagster imports.

Modules, one job each:
  config        TrainConfig and the run fingerprint (config + input data versions + code)
  model_inputs  the model-input declaration: tables, join keys, as-of rule, inputs, segments
  data          the declared tables' partitions -> tensors, the held-out split by key hash
  sampler       deterministic batches with a save/restore-able position
  streaming     examples streamed per parquet row group: sharded, window-shuffled, resumable
  model         the CTR model (matrix factorisation + context MLP), warm start, its loss
  optim         AdamW with linear warmup then cosine decay
  rng           seeding and weights_only-safe capture/restore of every RNG
  checkpoint    CheckpointManager: verified, atomic-by-manifest checkpoints on an ObjectStore
  distributed   torchrun/DDP set-up and the few collectives the loop needs
  progress      JSON progress lines on stdout and the progress.json heartbeat
  metrics       AUC and log loss without sklearn
  loop          train(): resume, train, save on interval/time/SIGTERM, evaluate
  evaluate      score a verified checkpoint on a window's held-out rows, or on a later day's rows
  paired_bootstrap  the paired-bootstrap interval of two models' difference on the same rows
  cli           `python -m training ...` (alone or under torchrun)
  store_args    where the object store is, as command-line arguments (CLI and Pipes bridge)

Nothing is imported eagerly here, so `import training` stays cheap.
"""
