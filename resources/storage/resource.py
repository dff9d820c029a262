"""Object storage as Dagster resources: the interface assets depend on, and the local-directory
backend. The S3 backend is resources/storage/s3_resource.py, imported only by production."""

from abc import abstractmethod

import dagster as dg

from resources.storage.object_store import LocalObjectStore, ObjectStore


class ObjectStorage(dg.ConfigurableResource):
    """Where feature tables and checkpoints live; assets depend on this base type only."""

    @abstractmethod
    def open_store(self) -> ObjectStore: ...

    @abstractmethod
    def trainer_args(self) -> list[str]:
        """How `python -m training` reaches the same store."""


class LocalObjectStorage(ObjectStorage):
    """A directory on this machine (the embedded default)."""

    root: str

    def open_store(self) -> ObjectStore:
        return LocalObjectStore(self.root)

    def trainer_args(self) -> list[str]:
        return ["--store-root", self.root]
