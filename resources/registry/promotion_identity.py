"""Which runs hold the promotion identity's credentials in production.

The registry writes through a client built from PROMOTION_AWS_* (resources/factory.py); on
Kubernetes those variables come from their own Secret, mounted only into the runs of the jobs
tagged here (the daily training job, whose last step promotes, and the rollback job). Every
other run, and every training pod, has no way to write the registry's versions, aliases or
history (deployments/iam/promotion.json).
"""

PROMOTION_SECRET = "ml-training-promotion-env"
PROMOTION_RUN_TAGS = {
    "dagster-k8s/config": {
        "container_config": {"env_from": [{"secret_ref": {"name": PROMOTION_SECRET}}]}
    }
}
