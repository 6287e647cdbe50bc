"""The Ray executor on a real local Ray and on a two-node cluster on this machine (`-m ray`)."""

from __future__ import annotations

import os

# every Ray node on loopback, never on the machine's network address (read when ray is imported)
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402

import pytest  # noqa: E402

from bncli.errors import UsageError  # noqa: E402
from bncli.executors import execute  # noqa: E402
from bncli.executors.serial import SerialExecutor  # noqa: E402
from bncli.plan import plan  # noqa: E402
from bncli.spec import parse_spec  # noqa: E402

pytestmark = pytest.mark.ray

HEAD_CONFIG = {  # notice a lost node within seconds, not the default half minute
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 3,
}


def _ray():
    ray = pytest.importorskip("ray")
    import ray._private.ray_constants as constants

    # ray may have been imported before this module set the variable: loopback all the same
    constants.ENABLE_RAY_CLUSTER = False
    import ray_helpers  # tests/ is on pytest's path, not on the workers': ship it by value

    ray.cloudpickle.register_pickle_by_value(ray_helpers)
    return ray


def _stripped(record) -> dict:
    d = record.to_json()
    d.pop("wall_s")
    for when in ("init", "end"):
        d["probes"].get("scale", {}).get("static", {}).get(when, {}).pop("wall_s", None)
    return d


def _assert_same_records(a, b) -> None:
    assert not a.failures and not b.failures and not a.interrupted and not b.interrupted
    assert len(a.records) == len(b.records) == len(a.jobs)
    for job, ra, rb in zip(a.jobs, a.records, b.records):
        assert _stripped(ra) == _stripped(rb), job.label


def _spec(tiny_spec_dict_factory, steps: int = 6, seeds: int = 1):
    return parse_spec(tiny_spec_dict_factory(
        train={"steps": steps, "eval_every": 3, "lr": [0.05, 0.2]}, seeds=seeds))


@pytest.fixture(scope="module")
def cluster():
    """Two nodes of one CPU each on this machine; the driver connects per executor run."""
    ray = _ray()
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={
        "num_cpus": 1, "node_ip_address": "127.0.0.1", "include_dashboard": False,
        "_system_config": HEAD_CONFIG})
    try:
        c.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        c.wait_for_nodes()
        yield c
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


def test_local_ray_gives_the_serial_records(tiny_spec_dict_factory):
    ray = _ray()
    from bncli.executors.ray import RayExecutor

    assert not ray.is_initialized()
    spec = _spec(tiny_spec_dict_factory)
    jobs = plan(spec, "train") + plan(spec, "ics")
    serial = execute(jobs, SerialExecutor())
    on_ray = execute(jobs, RayExecutor(num_cpus=2))
    _assert_same_records(on_ray, serial)
    assert not ray.is_initialized()  # the private Ray it started is gone


def test_cluster_retries_a_dead_worker_and_a_lost_nodes_jobs(cluster, tiny_spec_dict_factory, tmp_path):
    """One job kills its worker on its first attempt; the second node is removed while it runs a
    job. Both come back through Ray's retries, and every record is the serial executor's."""
    from ray_helpers import DieOnce

    from bncli.executors.ray import RayExecutor

    # single runs (a probe factory runs every job alone: fused groups are compared in test_fused)
    spec = _spec(tiny_spec_dict_factory, seeds=2).model_copy(update={"fuse": "off"})
    jobs = plan(spec, "train")  # 8 jobs
    marker, log = tmp_path / "died", tmp_path / "attempts"
    log.touch()
    factory = DieOnce("train", str(marker), str(log), arm="batchnorm", seed=0, delay=0.5)
    serial = execute(jobs, SerialExecutor())

    (worker_node,) = cluster.worker_nodes
    lost: list[list[str]] = []

    def remove_the_node_mid_job() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for a in (line.split() for line in log.read_text().splitlines()):
                # an attempt on that node that sleeps 0.5 s in its probe factory (not the one that dies)
                if a[-1] == worker_node.node_id and not (a[0] == "batchnorm" and a[2] == "0"):
                    cluster.remove_node(worker_node, allow_graceful=False)
                    lost.append(a)
                    return
            time.sleep(0.02)

    remover = threading.Thread(target=remove_the_node_mid_job, daemon=True)
    remover.start()
    on_ray = execute(jobs, RayExecutor(address=cluster.address, probe_factory=factory))
    remover.join()
    _assert_same_records(on_ray, serial)
    attempts = [line.split()[:3] for line in log.read_text().splitlines()]
    assert marker.exists() and attempts.count(["batchnorm", "0.05", "0"]) + attempts.count(
        ["batchnorm", "0.2", "0"]) == 3  # one of them twice
    assert lost, "no job ran on the second node"
    assert attempts.count(lost[0][:3]) == 2  # the lost node's job ran again on the head


def test_a_job_that_raises_is_reported_and_not_retried(cluster, tiny_spec_dict_factory, tmp_path):
    from ray_helpers import RaiseOn

    from bncli.executors.ray import RayExecutor

    spec = parse_spec(tiny_spec_dict_factory(train={"steps": 3, "eval_every": 3}))
    jobs = plan(spec, "train")  # plain, batchnorm
    log = tmp_path / "attempts"
    ex = execute(jobs, RayExecutor(address=cluster.address, probe_factory=RaiseOn("train", str(log), "batchnorm", 0)))
    (failure,) = ex.failures
    assert failure.job.arm == "batchnorm" and failure.error == "ValueError: boom"
    assert isinstance(failure.exception, ValueError)
    assert [r.arm for r in ex.records] == ["plain"]
    assert [a.split()[0] for a in log.read_text().splitlines()].count("batchnorm") == 1


def test_each_job_asks_for_its_threads_and_a_gpu_when_it_runs_on_cuda(tiny_spec_dict_factory):
    from bncli.executors.ray import RayExecutor

    device = RayExecutor._device
    assert device("cuda:1", 0) == device("cuda", 0) == device("auto", 1) == "cuda"  # the GPU Ray assigns
    assert device("auto", 0) == device("cpu", 1) == "cpu"
    job = plan(_spec(tiny_spec_dict_factory), "train")[0]
    assert RayExecutor()._threads(job) == 1 and RayExecutor(threads_per_job=3)._threads(job) == 3
    threaded = plan(parse_spec(tiny_spec_dict_factory(threads=2)), "train")[0]
    assert RayExecutor(threads_per_job=3)._threads(threaded) == 2


def test_missing_ray_is_a_usage_error_with_the_install_hint(monkeypatch):
    from bncli.executors.ray import make_ray_executor

    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(UsageError, match=r"pip install 'bncli\[ray\]'") as err:
        make_ray_executor(None)
    assert err.value.exit_code == 2
