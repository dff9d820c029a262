"""Where the trainer runs:
launcher      the interface, and the local subprocess (embedded default)
k8s_launcher  the trainer as a GPU pod or an Indexed Job (PipesK8sClient), production only
multinode     N pods x G GPUs: the Indexed Job, headless Service and torchrun command
pipes_bridge  the process the launcher starts: runs the trainer, relays it through Pipes
preemption    the preemption request the sensor writes and the bridge watches for
gpu_policy    how the `gpu` pool is shared: how often a backfill run may yield its GPU
"""
