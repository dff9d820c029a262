"""The deployment's GPU node inventory, as the production factory reads it, for tests that build
trainer launchers."""

from resources.trainer.gpu_inventory import load_inventory
from tests.support.environment import REPO_ROOT

INVENTORY_FILE = REPO_ROOT / "deployments" / "k8s" / "gpu-inventory.yaml"
INVENTORY = load_inventory(INVENTORY_FILE)
