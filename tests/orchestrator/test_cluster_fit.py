"""The driver's check that a sweep's jobs fit the cluster, now or once an autoscaler grows it."""

from __future__ import annotations

import pytest

from orchestrator.errors import ClusterError
from orchestrator.ray_driver import check_fits
from orchestrator.spec import Resources

GPU_JOB = Resources(cpus=8, gpus=1)


def test_a_fixed_cluster_without_the_gpus_is_refused():
    with pytest.raises(ClusterError, match=r"asks for 1.0 GPU\(s\), but the Ray cluster has 0$"):
        check_fits([GPU_JOB], {"CPU": 16}, None)


def test_an_autoscaling_cluster_at_zero_workers_is_accepted():
    # KubeRay's head only (num-cpus 0), a GPU group of 9 CPUs and 1 GPU that may grow to 8 pods
    check_fits([GPU_JOB], {}, {"CPU": 72, "GPU": 8})


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            Resources(cpus=8, gpus=2),
            r"asks for 2.0 GPU\(s\), but the Ray cluster has 1 and can grow to 1",
        ),
        (
            Resources(cpus=16, gpus=1),
            r"asks for 16.0 CPUs, but the Ray cluster has 9 and can grow to 9",
        ),
    ],
)
def test_an_autoscaling_cluster_that_can_never_fit_the_job_is_refused(job, message):
    with pytest.raises(ClusterError, match=message):
        check_fits([job], {"CPU": 9, "GPU": 1}, {"CPU": 9, "GPU": 1})


def test_what_the_cluster_has_now_counts_beyond_the_autoscaler():
    # a node started by hand, outside the autoscaler's groups
    check_fits([GPU_JOB], {"CPU": 8, "GPU": 1}, {"CPU": 4})
