"""The model registry as a Dagster resource, on the same object storage as everything else."""

import dagster as dg
from pydantic import Field

from resources.registry.registry import DEFAULT_MODEL, ModelRegistry
from resources.storage.resource import ObjectStorage


class ModelRegistryResource(dg.ConfigurableResource):
    """Version records, aliases (moved by compare-and-swap) and their history for one model."""

    storage: ObjectStorage
    model_name: str = Field(default=DEFAULT_MODEL, description="Registry namespace of the model.")

    def open_registry(self) -> ModelRegistry:
        return ModelRegistry(self.storage.open_store(), self.model_name)  # type: ignore[arg-type]
