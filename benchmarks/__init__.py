"""Benchmarks: each prints its figures as ratios against a baseline run in the same command.
features           per-partition cost of the feature assets against the same functions in a loop
source_read        peak memory of the source step, the day streamed against held as one table
backfill           a year of feature partitions through the real daemon, against one process
training           orchestration, checkpointing and resume cost of the training asset
training_volume    the streaming trainer against the in-memory one at production volume
imports            what a process pays to load the code location
daily_vs_backfill  the daily training run's wait for the GPU behind a training backfill
model_quality      the daily model's AUC against the generator's optimum, day by day
promotion_race     N processes racing to promote: winners, lost updates, latency
next_day_guard     the next-day guard: false rollbacks of good days, the smallest regression caught
gpu_packing        simulated GPU pool: today's scheduler against Kueue, quotas and packing shapes
gate_false_positives  clean days the distribution and replay gates block, and their margin
second_dataset     a second daily table (orders) unlike the example's, for the gates' tests
loopback_s3        not a benchmark: moto's S3 on loopback, each request one step (tests use it too)
"""
