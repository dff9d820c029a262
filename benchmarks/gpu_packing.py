"""GPU capacity on one node pool: today's cluster behaviour against Kueue's admission with shapes
that pack, as a discrete-event simulation (pure Python, seeded, deterministic).

The seeds' scenario: 8-GPU nodes whose free GPUs start scattered (other tenants' 1- and 3-GPU
pods on every node, leaving 1-3 GPUs free each, for 4-16 hours), a 90-day reprocessing backfill
of 2-GPU training runs submitted beside the morning's daily 2-GPU runs, and multi-node training
jobs. The tenants' pods are the same under both policies: no admission policy moves them. As
in the seeds, the backfill is another namespace's (or deployment's): the daily deployment's
`gpu` pool and preemption sensor never see it; only the cluster does.
Each simulated day is one draw of that mix; `--days` draws are simulated and pooled.

Two policies, same jobs:

- today: the default kube-scheduler and nothing else. Pods are placed one by one in arrival
  order (no priority between the pipeline's runs), each on the node with the most free GPUs
  (LeastAllocated, the default score), so allocations spread. Shapes are free: the multi-node
  job asks 3 pods x 6 GPUs. No quota: the backfill takes whatever is free. No gang admission:
  a multi-node job's placed pods hold their GPUs idle until its last pod is placed.
- policy: what deployments/k8s/kueue/ and the trainer's shape check give. Jobs wait suspended
  (holding nothing) in Kueue's queue, ordered by priority (daily above the rest), admitted whole
  when the quota and a placement for all their pods are free (BestEffortFIFO: a job that fits is
  not held behind one that does not). Kueue itself checks quota only: the placement check stands
  for its `waitForPodsReady` requeueing (docs/gpu-capacity.md), exact with topology-aware
  scheduling. The backfill's namespace has a quota (`--backfill-quota`
  GPUs). Shapes pack: the multi-node job takes 2 whole nodes (2 x 8, the same GPU-hours of
  work); pods are bin-packed (MostAllocated). A daily run that cannot be placed evicts the
  newest lower-priority Job (Kueue's preemption): its pods get SIGTERM, checkpoint and release
  their GPUs after `--drain-s`; it queues again with its remaining work plus a restart.

Durations come from the project's measured training speed (README, Benchmarks: the bare trainer
trains 68,744 samples/s on the 2-core CPU machine) and stated GPU assumptions (below, and the
flags). Waits are measured from a job's arrival to all its pods placed (container start is the
same in both policies and left out).

Reported per policy: GPU utilization (GPU-seconds training / GPU-seconds of the pool until the
last job ends), the daily runs' wait p50/p99, GPU-hours idle while a job queues (free GPUs plus
GPUs held idle by a half-placed job), the time a job waited although a placement for it was free
(quota allowing; must be 0 under the policy) and the time a job waited while enough GPUs were
idle for its shape but scattered. The last line is
`ratio=<idle-while-queued GPU-hours today / with the policy>`.

    python -m benchmarks.gpu_packing --days 14 --seed 7
"""

from __future__ import annotations

import argparse
import heapq
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

# Measured: the bare trainer on the 2-core CPU machine (README, Benchmarks).
CPU_SAMPLES_PER_S = 68_744
DAY_S = 24 * 3600
DAILY_PRIORITY, OTHER_PRIORITY = 1000, 100
KINDS = ("daily", "backfill", "multinode")
# GPUs of the other tenants' pods on one 8-GPU node at the start of a day.
TENANT_PATTERNS = ((3, 3, 1), (3, 1, 1, 1), (3, 3), (1, 3, 1), (3, 1, 3))


@dataclass(frozen=True)
class Assumptions:
    """What the simulation assumes beyond the measured CPU speed (all flags of the command)."""

    nodes: int = 4
    gpus_per_node: int = 8
    # One GPU trains this model this many times faster than the measured CPU run.
    gpu_speedup: float = 10.0
    # Data-parallel efficiency across GPUs (all-reduce cost).
    ddp_efficiency: float = 0.9
    # A daily run: a 7-day window of this many impressions a day, this many epochs.
    impressions_per_day: float = 20e6
    window_days: int = 7
    epochs: int = 10
    daily_runs: int = 6
    backfill_days: int = 90
    backfill_start_s: float = 6 * 3600
    multinode_jobs: int = 2
    multinode_gpu_hours: float = 24.0
    # The backfill namespace's ClusterQueue: nominal GPUs, and what it may borrow from the
    # cohort while idle (reclaimed by evicting it when the pipeline's Jobs need their quota).
    backfill_quota: int = 16
    backfill_borrowing: int = 16
    # Kueue's eviction to the GPUs' release: the trainer's measured 2 s from SIGTERM to its
    # step's end (README) plus pod deletion and Kueue's reconcile, assumed.
    drain_s: float = 10.0
    # A preempted job's restart: pod start and the measured 5 s resume.
    restart_s: float = 30.0

    def training_s(self, gpus: int, rng: random.Random) -> float:
        samples = self.impressions_per_day * self.window_days * self.epochs
        speed = (
            CPU_SAMPLES_PER_S * self.gpu_speedup * gpus * (self.ddp_efficiency if gpus > 1 else 1)
        )
        return samples / speed * rng.uniform(0.8, 1.2)


@dataclass
class Job:
    name: str
    kind: str  # daily | backfill | multinode | tenant
    arrival: float
    pods: int
    gpus_per_pod: int
    work_s: float
    priority: int
    placed: list[int] = field(default_factory=list)  # node of each placed pod
    started: float | None = None
    first_start: float | None = None
    ends: float | None = None
    draining_until: float | None = None
    victim_for: str | None = None

    @property
    def gpus(self) -> int:
        return self.pods * self.gpus_per_pod


def day_mix(a: Assumptions, rng: random.Random, packing: bool) -> tuple[list[Job], list[Job]]:
    """(already running tenants, arriving jobs) of one day."""
    # Other tenants' pods at midnight, on every node, leaving 1-3 GPUs free each: scattered.
    tenants = []
    for node in range(a.nodes):
        for size in rng.choice(TENANT_PATTERNS):
            tenant = Job(f"tenant-{len(tenants)}", "tenant", 0.0, 1, size, 0.0, 0)
            tenant.work_s = rng.uniform(4, 16) * 3600
            tenant.placed = [node]
            tenants.append(tenant)
    jobs = [
        Job(f"daily-{i}", "daily", rng.uniform(6, 9) * 3600, 1, 2, a.training_s(2, rng),
            DAILY_PRIORITY)
        for i in range(a.daily_runs)
    ]  # fmt: skip
    jobs += [
        Job(f"backfill-{d}", "backfill", a.backfill_start_s + d * 0.5, 1, 2, a.training_s(2, rng),
            OTHER_PRIORITY)
        for d in range(a.backfill_days)
    ]  # fmt: skip
    for i in range(a.multinode_jobs):
        # The same GPU-hours of work in either shape: 3 x 6 GPUs today, 2 whole nodes packed.
        pods, per_pod = (2, a.gpus_per_node) if packing else (3, 6)
        work = a.multinode_gpu_hours * 3600 / (pods * per_pod) * rng.uniform(0.8, 1.2)
        jobs.append(
            Job(f"multinode-{i}", "multinode", rng.uniform(0, 20) * 3600, pods, per_pod, work,
                OTHER_PRIORITY)
        )  # fmt: skip
    return tenants, sorted(jobs, key=lambda j: j.arrival)


@dataclass
class Totals:
    busy_gpu_s: float = 0.0
    pool_gpu_s: float = 0.0
    idle_while_queued_gpu_s: float = 0.0
    waiting_with_fitting_placement_s: float = 0.0
    # Per kind of job: it waited while enough GPUs for its shape were idle, but scattered
    # (or held by a half-placed job).
    waiting_with_enough_idle_gpus_s: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(KINDS, 0.0)
    )
    daily_waits: list[float] = field(default_factory=list)
    preemptions: int = 0
    half_placed_gpu_s: float = 0.0


class Cluster:
    def __init__(self, a: Assumptions, packing_policy: bool):
        self.a = a
        self.policy = packing_policy
        self.free = [a.gpus_per_node] * a.nodes
        self.events: list[tuple[float, int, str, Job]] = []
        self.seq = 0
        self.waiting: list[Job] = []
        self.running: list[Job] = []
        # Nodes a preempting job waits on: what its victims free is its own (Kueue nominates
        # the preemptor for the capacity it freed), so no other job takes it meanwhile.
        self.reserved: dict[int, str] = {}

    def at(self, t: float, kind: str, job: Job) -> None:
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, job))

    # Placement: today's default score spreads (most free first); the policy bin-packs.
    def _node_for(self, free: list[int], gpus: int) -> int | None:
        fits = [n for n in range(len(free)) if free[n] >= gpus]
        if not fits:
            return None
        pick: Callable[[int], tuple[int, int]] = (
            (lambda n: (free[n], n)) if self.policy else (lambda n: (-free[n], n))
        )
        return min(fits, key=pick)

    def placement(self, job: Job, free: list[int]) -> list[int] | None:
        free = [f if self.reserved.get(n, job.name) == job.name else 0 for n, f in enumerate(free)]
        nodes = []
        for _ in range(job.pods - len(job.placed)):
            node = self._node_for(free, job.gpus_per_pod)
            if node is None:
                return None
            free[node] -= job.gpus_per_pod
            nodes.append(node)
        return nodes

    def backfill_used(self) -> int:
        return sum(j.gpus for j in self.running if j.kind == "backfill")

    def quota_allows(self, job: Job) -> bool:
        if not self.policy or job.kind != "backfill":
            return True
        limit = self.a.backfill_quota + self.a.backfill_borrowing
        return self.backfill_used() + job.gpus <= limit

    def start_tenant(self, job: Job) -> None:
        [node] = job.placed
        self.free[node] -= job.gpus_per_pod
        assert self.free[node] >= 0, "the tenants fit their node"
        job.started = 0.0
        self.running.append(job)
        self.at(job.work_s, "end", job)

    def _start(self, job: Job, now: float, totals: Totals) -> None:
        job.started = now
        if job.first_start is None:
            job.first_start = now
            if job.kind == "daily":
                totals.daily_waits.append(now - job.arrival)
        self.waiting.remove(job)
        self.running.append(job)
        job.ends = now + job.work_s
        self.at(job.ends, "end", job)

    def schedule(self, now: float, totals: Totals) -> None:
        if self.policy:
            self._admit(now, totals)
        else:
            self._place_pods(now, totals)

    def _place_pods(self, now: float, totals: Totals) -> None:
        """The default scheduler: every pending pod, in arrival order, wherever it fits now."""
        for job in list(self.waiting):
            while len(job.placed) < job.pods:
                node = self._node_for(self.free, job.gpus_per_pod)
                if node is None:
                    break
                self.free[node] -= job.gpus_per_pod
                job.placed.append(node)
            if len(job.placed) == job.pods:
                self._start(job, now, totals)

    def _admit(self, now: float, totals: Totals) -> None:
        """Kueue: by priority then arrival; a job is admitted whole or waits holding nothing."""
        for job in sorted(self.waiting, key=lambda j: (-j.priority, j.arrival)):
            nodes = self.placement(job, self.free) if self.quota_allows(job) else None
            if nodes is not None:
                for node in nodes:
                    self.free[node] -= job.gpus_per_pod
                job.placed = nodes
                self.reserved = {n: o for n, o in self.reserved.items() if o != job.name}
                self._start(job, now, totals)
            elif any(v.victim_for == job.name for v in self.running):
                continue
            elif job.priority == DAILY_PRIORITY:
                self._preempt_for(job, now, totals)
            elif job.kind == "multinode":
                self._reclaim_nodes_for(job, now, totals)

    def _evict(self, victims: list[Job], job: Job, now: float, totals: Totals) -> None:
        for victim in victims:
            for node in victim.placed:
                self.reserved.setdefault(node, job.name)
            victim.draining_until = now + self.a.drain_s
            victim.victim_for = job.name
            totals.preemptions += 1
            self.at(victim.draining_until, "evicted", victim)

    def _reclaim_nodes_for(self, job: Job, now: float, totals: Totals) -> None:
        """Kueue's reclaim within the cohort: the backfill's borrowed GPUs go back, here the
        backfill Jobs on the nodes that then empty for the whole-node job (bin-packing keeps
        them few), never taking the backfill below its nominal quota."""
        per_node: dict[int, list[Job]] = {n: [] for n in range(self.a.nodes)}
        pinned = set()
        for running in self.running:
            for node in running.placed:
                if running.kind == "backfill" and running.draining_until is None:
                    per_node[node].append(running)
                else:
                    pinned.add(node)
        candidates = sorted(
            (n for n in per_node if n not in pinned and self.reserved.get(n, job.name) == job.name),
            key=lambda n: sum(j.gpus for j in per_node[n]),
        )
        if len(candidates) < job.pods:
            return
        victims = [v for n in candidates[: job.pods] for v in per_node[n]]
        borrowed = self.backfill_used() - self.a.backfill_quota
        if victims and sum(v.gpus for v in victims) <= borrowed:
            self._evict(victims, job, now, totals)

    def _preempt_for(self, job: Job, now: float, totals: Totals) -> None:
        """Evict the newest lower-priority single-pod Jobs on the node that frees the job's
        shape with the fewest evictions (Kueue's preemption, with a placement that fits)."""
        best: list[Job] | None = None
        for node in range(self.a.nodes):
            candidates = sorted(
                (
                    j for j in self.running
                    if j.placed == [node] and j.priority < job.priority and j.kind != "tenant"
                    and j.draining_until is None
                ),
                key=lambda j: -(j.started or 0),
            )  # fmt: skip
            free, chosen = self.free[node], []
            for victim in candidates:
                if free >= job.gpus_per_pod:
                    break
                chosen.append(victim)
                free += victim.gpus
            if self.reserved.get(node, job.name) != job.name:
                continue
            if free >= job.gpus_per_pod and (best is None or len(chosen) < len(best)):
                best = chosen
        self._evict(best or [], job, now, totals)

    def release(self, job: Job) -> None:
        for node in job.placed:
            self.free[node] += job.gpus_per_pod
        job.placed = []
        self.running.remove(job)


def simulate_day(a: Assumptions, seed: int, packing_policy: bool, totals: Totals) -> None:
    rng = random.Random(seed)
    tenants, jobs = day_mix(a, rng, packing=packing_policy)
    cluster = Cluster(a, packing_policy)
    for tenant in tenants:
        cluster.start_tenant(tenant)
    for job in jobs:
        cluster.at(job.arrival, "arrive", job)
    total_gpus = a.nodes * a.gpus_per_node
    now = 0.0
    while cluster.events:
        t = cluster.events[0][0]
        _account(cluster, now, t, total_gpus, totals)
        now = t
        while cluster.events and cluster.events[0][0] == now:
            _, _, kind, job = heapq.heappop(cluster.events)
            if kind == "arrive":
                cluster.waiting.append(job)
            elif kind == "end" and job in cluster.running and job.ends in (None, now):
                # A tenant (no end of ours), or the job's current end: not a stale one from
                # before an eviction.
                cluster.release(job)
            elif kind == "evicted" and job in cluster.running:
                # Saved on SIGTERM: the remaining work plus a restart.
                job.work_s = max(0.0, (job.ends or now) - now) + a.restart_s
                job.ends, job.draining_until, job.victim_for = None, None, None
                cluster.release(job)
                cluster.waiting.append(job)
        cluster.schedule(now, totals)
    assert not cluster.waiting and not cluster.running, "every job ran to its end"


def _account(cluster: Cluster, start: float, end: float, total_gpus: int, totals: Totals) -> None:
    dt = end - start
    if dt <= 0:
        return
    training = sum(j.gpus for j in cluster.running)
    half_placed = sum(len(j.placed) * j.gpus_per_pod for j in cluster.waiting)
    free = sum(cluster.free)
    totals.busy_gpu_s += training * dt
    totals.pool_gpu_s += total_gpus * dt
    totals.half_placed_gpu_s += half_placed * dt
    if cluster.waiting:
        totals.idle_while_queued_gpu_s += (free + half_placed) * dt
        if any(
            cluster.quota_allows(j) and cluster.placement(j, cluster.free) is not None
            for j in cluster.waiting
        ):
            totals.waiting_with_fitting_placement_s += dt
        for kind in KINDS:
            if any(
                j.kind == kind and j.gpus - len(j.placed) * j.gpus_per_pod <= free
                for j in cluster.waiting
            ):
                totals.waiting_with_enough_idle_gpus_s[kind] += dt


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def run(a: Assumptions, days: int, seed: int, packing_policy: bool) -> Totals:
    totals = Totals()
    for day in range(days):
        simulate_day(a, seed * 1000 + day, packing_policy, totals)
    return totals


def report(name: str, totals: Totals) -> list[str]:
    waits = totals.daily_waits
    return [
        f"{name}_gpu_utilization={totals.busy_gpu_s / totals.pool_gpu_s:.3f}",
        f"{name}_daily_wait_p50_s={statistics.median(waits):.1f}",
        f"{name}_daily_wait_p99_s={percentile(waits, 0.99):.1f}",
        f"{name}_idle_while_queued_gpu_h={totals.idle_while_queued_gpu_s / 3600:.2f}",
        f"{name}_half_placed_idle_gpu_h={totals.half_placed_gpu_s / 3600:.2f}",
        f"{name}_waiting_with_fitting_placement_s={totals.waiting_with_fitting_placement_s:.1f}",
        *(
            f"{name}_{kind}_waiting_with_enough_idle_gpus_s={seconds:.1f}"
            for kind, seconds in totals.waiting_with_enough_idle_gpus_s.items()
        ),
        f"{name}_preemptions={totals.preemptions}",
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14, help="simulated days, pooled")
    parser.add_argument("--seed", type=int, default=7)
    defaults = Assumptions()
    for name, value in vars(defaults).items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    args = parser.parse_args(argv)
    a = Assumptions(**{k: getattr(args, k) for k in vars(defaults)})
    daily_s = a.training_s(2, random.Random(0)) / random.Random(0).uniform(0.8, 1.2)
    print(
        f"assumptions: {a.nodes} nodes x {a.gpus_per_node} GPUs; 1 GPU = {a.gpu_speedup:g} x the "
        f"measured {CPU_SAMPLES_PER_S:,} samples/s CPU trainer, DDP efficiency "
        f"{a.ddp_efficiency:g}; a 2-GPU daily/backfill run ~{daily_s / 60:.1f} min; "
        f"{a.daily_runs} daily runs 06-09h, a {a.backfill_days}-day backfill from "
        f"{a.backfill_start_s / 3600:g}h, {a.multinode_jobs} multi-node jobs of "
        f"{a.multinode_gpu_hours:g} GPU-h; backfill quota {a.backfill_quota} GPUs "
        f"+ {a.backfill_borrowing} borrowed; "
        f"{args.days} days, seed {args.seed}"
    )
    today = run(a, args.days, args.seed, packing_policy=False)
    policy = run(a, args.days, args.seed, packing_policy=True)
    for line in report("today", today) + report("policy", policy):
        print(line)
    p99 = percentile(policy.daily_waits, 0.99)
    holds = (
        p99 < 60 and policy.waiting_with_fitting_placement_s == 0 and policy.half_placed_gpu_s == 0
    )
    print(f"policy_daily_p99_under_60s_and_no_job_waits_beside_a_fitting_shape={holds}")
    print(f"daily_p99_wait_ratio={percentile(today.daily_waits, 0.99) / max(p99, 1e-9):.1f}")
    ratio = today.idle_while_queued_gpu_s / max(policy.idle_while_queued_gpu_s, 1e-9)
    print(f"ratio={ratio:.2f}")


if __name__ == "__main__":
    main()
