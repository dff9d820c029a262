"""The daily model:
training_dataset  the gate-approved training window of a day, with the hash of every input
model_checkpoint  the daily training asset: fingerprint, launch, resume, lineage metadata
environment_gate  training refused (or the drift recorded) on an environment unlike the lock
evaluation        the day's candidate against production on the same held-out rows; checks
records           the candidate and evaluation records the model assets leave in storage
"""
