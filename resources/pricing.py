"""What compute costs: the prices the SLO asset multiplies a run's seconds by."""

from dataclasses import dataclass

import dagster as dg
from pydantic import Field


@dataclass(frozen=True)
class Rates:
    cpu_hour_usd: float
    gpu_hour_usd: float
    cpus_per_run: float


class ComputePrices(dg.ConfigurableResource):
    """Prices per CPU-hour and GPU-hour, and the CPUs one run holds (numbers as text, so that
    each can come from an environment variable through `dg.EnvVar`)."""

    cpu_hour_usd: str = Field(default="0.05", description="USD per CPU-hour (CPU_HOUR_PRICE_USD).")
    gpu_hour_usd: str = Field(default="2.50", description="USD per GPU-hour (GPU_HOUR_PRICE_USD).")
    cpus_per_run: str = Field(
        default="1",
        description="CPUs a run holds for its whole duration: its run worker and a CPU trainer "
        "(RUN_CPUS).",
    )

    def rates(self) -> Rates:
        values = {}
        for name in ("cpu_hour_usd", "gpu_hour_usd", "cpus_per_run"):
            text = getattr(self, name)
            try:
                values[name] = float(text)
            except ValueError:
                raise ValueError(
                    f"ComputePrices.{name} is {text!r}, not a number: set it (or its "
                    "environment variable) to a decimal such as 0.05"
                ) from None
            if values[name] < 0:
                raise ValueError(f"ComputePrices.{name} is {text}: it cannot be negative")
        return Rates(**values)
