"""The GPU trainer image's lock is the CPU lock with torch's CUDA build of the same version and
the CUDA packages it adds, nothing else: both images run the same versions of everything."""

import pytest
from packaging.utils import canonicalize_name

from scripts.gpu_lock import gpu_lock
from scripts.install_lock import read_lock
from tests.support.environment import REPO_ROOT

CUDA_STACK = ("nvidia-", "cuda-", "triton")
REFRESH = "requirements.lock changed: regenerate the GPU lock with `make lock-gpu` (network)"


def _pins(name: str) -> dict[str, str]:
    _, plain, local = read_lock(REPO_ROOT / name)
    return {canonicalize_name(p.partition("==")[0]): p.partition("==")[2] for p in plain + local}


def test_the_gpu_lock_is_the_cpu_lock_with_cuda_torch():
    cpu, gpu = _pins("requirements.lock"), _pins("requirements-gpu.lock")
    assert cpu["torch"].endswith("+cpu")
    assert gpu["torch"] == cpu["torch"].removesuffix("+cpu"), REFRESH
    for name, version in cpu.items():
        if name != "torch":
            assert gpu.get(name) == version, f"{name}: {REFRESH}"
    added = sorted(set(gpu) - set(cpu))
    assert added and all(name.startswith(CUDA_STACK) for name in added), added
    assert any(name.startswith("nvidia-nccl") for name in added)  # multi-GPU all-reduce


def test_the_gpu_lock_installs_without_the_cpu_index():
    # No local-label pin: every line comes from pip's configured index with --no-deps.
    index, _, local = read_lock(REPO_ROOT / "requirements-gpu.lock")
    assert local == [] and index is None


def _report(**versions: str) -> dict:
    return {"install": [{"metadata": {"name": n, "version": v}} for n, v in versions.items()]}


CPU_LOCK = (
    "# header\n# torch-index: https://example.invalid/cpu\nfilelock==4.2.11\ntorch==2.13.0+cpu\n"
)


def test_the_generator_swaps_torch_and_adds_the_cuda_stack():
    lock = gpu_lock(CPU_LOCK, _report(torch="2.13.0", filelock="4.2.11", triton="3.7.1"))
    assert lock.splitlines()[2:] == ["filelock==4.2.11", "torch==2.13.0", "triton==3.7.1"]
    assert "torch-index" not in lock


@pytest.mark.parametrize(
    ("report", "refusal"),
    [
        (_report(torch="2.13.0+cpu"), "needs the CUDA build"),
        (_report(torch="2.14.0"), "needs the CUDA build"),
        (_report(torch="2.13.0", filelock="4.3.1"), "filelock: CPU lock 4.2.11, resolved 4.3.1"),
    ],
)
def test_the_generator_refuses_a_resolution_that_is_not_the_cpu_locks(report, refusal):
    with pytest.raises(SystemExit, match=refusal):
        gpu_lock(CPU_LOCK, report)
