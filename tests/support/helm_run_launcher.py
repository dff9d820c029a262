"""The K8sRunLauncher block the official chart (1.13.27) writes into dagster.yaml from our
values: helpers/instance/_run-launcher.tpl ("dagsterYaml.runLauncher.k8s"), for a release named
`dagster` in namespace `dagster` (deployments/k8s/values.yaml's install command).

The chart renders runK8sConfig's four blocks as written (camelCase inside; dagster-k8s reads
both spellings), the Secret names of envSecrets, and the chart's own service account as the
default one (runK8sConfig's podSpecConfig overrides it on the pod).
"""

from tests.support.queue_policy import helm_merge

RELEASE = "dagster"
RELEASE_NAMESPACE = "dagster"
# The chart's values.yaml for the k8sRunLauncher keys ours may leave out.
CHART_K8S_RUN_LAUNCHER_DEFAULTS = {
    "imagePullPolicy": "Always",
    "loadInclusterConfig": True,
    "envConfigMaps": [],
    "envSecrets": [],
    "envVars": [],
    "volumeMounts": [],
    "volumes": [],
    "labels": {},
    "resources": {},
    "securityContext": {},
    "runK8sConfig": {},
}
_RUN_K8S_CONFIG_KEYS = {
    "containerConfig": "container_config",
    "podSpecConfig": "pod_spec_config",
    "podTemplateSpecMetadata": "pod_template_spec_metadata",
    "jobSpecConfig": "job_spec_config",
    "jobMetadata": "job_metadata",
}
_OPTIONAL = {
    "envVars": "env_vars",
    "volumeMounts": "volume_mounts",
    "volumes": "volumes",
    "labels": "labels",
    "resources": "resources",
    "securityContext": "security_context",
}


def render_k8s_run_launcher(values: dict) -> dict:
    """`run_launcher.config` as the chart renders it (empty optional blocks are left out)."""
    launcher = helm_merge(
        CHART_K8S_RUN_LAUNCHER_DEFAULTS, values["runLauncher"]["config"]["k8sRunLauncher"]
    )
    config: dict = {
        "load_incluster_config": launcher["loadInclusterConfig"],
        "job_namespace": launcher.get("jobNamespace") or RELEASE_NAMESPACE,
        "image_pull_policy": launcher["imagePullPolicy"],
        "service_account_name": (values.get("serviceAccount") or {}).get("name") or RELEASE,
        "dagster_home": "/opt/dagster/dagster_home",
        "instance_config_map": f"{RELEASE}-instance",
        "postgres_password_secret": f"{RELEASE}-postgresql-secret",
    }
    if launcher.get("kubeconfigFile"):
        config["kubeconfig_file"] = launcher["kubeconfigFile"]
    if launcher["envConfigMaps"]:
        config["env_config_maps"] = [c["name"] for c in launcher["envConfigMaps"] if "name" in c]
    if launcher["envSecrets"]:
        config["env_secrets"] = [s["name"] for s in launcher["envSecrets"] if "name" in s]
    for key, name in _OPTIONAL.items():
        if launcher[key]:
            config[name] = launcher[key]
    if launcher.get("schedulerName"):
        config["scheduler_name"] = launcher["schedulerName"]
    if launcher.get("failPodOnRunFailure"):
        config["fail_pod_on_run_failure"] = True
    if launcher["runK8sConfig"]:
        config["run_k8s_config"] = {
            name: launcher["runK8sConfig"][key]
            for key, name in _RUN_K8S_CONFIG_KEYS.items()
            if launcher["runK8sConfig"].get(key)
        }
    return config
