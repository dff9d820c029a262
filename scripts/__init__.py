"""Commands run by the Makefile, benchmarks and tests:
prepare_local       the embedded defaults: DAGSTER_HOME, a seeded warehouse, an object store
demo                three days of features through the embedded instance, headless
run_day             one day's features and training job from the command line (make run-day)
synthetic_events    the deterministic event generator that fills the embedded warehouse
synthetic_examples  the example's trainer inputs at volume, written straight (benchmarks)
dagster_processes   the real webserver and daemon as subprocesses, driven through GraphQL
training_scenarios  approved days, a whole training run killed, an uninterrupted reference
slo_exporter        the SLO numbers in Prometheus' text format
install_lock        installs a lock exactly, with the CPU torch from wherever it is
gpu_lock            writes the GPU trainer image's lock from the CPU lock
split_lock          splits one resolution into the runtime lock and the development lock
"""
