"""Where the trainer runs:
launcher      the interface, and the local subprocess (embedded default)
k8s_launcher  the trainer as a Kueue-admitted Job of one pod or whole nodes, production only
multinode     N pods x G GPUs: the Indexed Job, headless Service, torchrun command, launch
admission     Kueue's labels on the Job, its phases, waiting for admission, eviction
gpu_inventory the node inventory per flavor, and the trainer shapes that pack it
pipes_bridge  the process the launcher starts: runs the trainer, relays it through Pipes
preemption    the preemption request the sensor writes and the bridge watches for
gpu_policy    how the `gpu` pool is shared: how often a backfill run may yield its GPU
"""
