"""Which pods hold the promotion identity's credentials in production, and who launches them.

The registry writes through a client built from PROMOTION_AWS_* (resources/factory.py); on
Kubernetes those variables come from their own Secret, which reaches exactly two kinds of pod:

- the step pods of the daily training run that move the alias: `model_promotion` and the
  next-day guard (`model_next_day_guard`, which may roll back). In production that job runs
  each step in its own pod (dagster-k8s's `k8s_job_executor`, assets/jobs.py), and these two
  steps carry `PROMOTION_STEP_TAGS`; the dataset, trainer-launching and evaluation steps, and
  the run's own pod, do not;
- the run pod of `rollback_model_job`, whose only step moves the alias (`PROMOTION_RUN_TAGS`).

Every other run, step and training pod has no way to write the registry's versions, aliases or
history (deployments/iam/promotion.json); a pod that may create pods in the Secret's namespace
could mount it, so only `STEP_LAUNCHER_SERVICE_ACCOUNT` (the daily training run's own pod, which
runs no asset code) may create Jobs there (deployments/k8s/step-launcher-rbac.yaml).
"""

PROMOTION_SECRET = "ml-training-promotion-env"
_PROMOTION_K8S_CONFIG = {
    "container_config": {"env_from": [{"secret_ref": {"name": PROMOTION_SECRET}}]}
}
# Op tags: honoured by the k8s_job_executor for the step's own pod; in-process runs ignore them.
PROMOTION_STEP_TAGS = {"dagster-k8s/config": _PROMOTION_K8S_CONFIG}
# Job tags: honoured by the K8sRunLauncher for the run's pod (not passed on to step pods).
PROMOTION_RUN_TAGS = {"dagster-k8s/config": _PROMOTION_K8S_CONFIG}

# The daily training run's pod in production: it only launches, watches and deletes the step
# Jobs, so it runs as this account (no cloud role) instead of the run workers'.
STEP_LAUNCHER_SERVICE_ACCOUNT = "ml-training-step-launcher"
STEP_LAUNCHER_RUN_TAGS = {
    "dagster-k8s/config": {
        "pod_spec_config": {"service_account_name": STEP_LAUNCHER_SERVICE_ACCOUNT}
    }
}
