"""Where the project lives on disk (the working directory of every Dagster process)."""

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
