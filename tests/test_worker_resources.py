"""Each pytest-xdist worker's share of the machine: threads and GPUs (`harness.worker_resources`). No TensorFlow."""

from __future__ import annotations

import pytest

from harness import worker_resources
from harness.worker_resources import LITERT_THREADS, THREAD_VARIABLES, share, thread_share, worker_gpu


@pytest.mark.parametrize(
    ("setting", "workers", "cores", "expected"),
    [
        ("auto", 2, 2, 1),
        ("auto", 2, 16, 8),
        ("auto", 3, 16, 5),
        ("auto", 8, 2, 1),
        ("3", 2, 16, 3),
        ("off", 2, 2, None),
    ],
)
def test_thread_share(setting: str, workers: int, cores: int, expected: int | None) -> None:
    assert thread_share(setting, workers, cores) == expected


def test_each_worker_gets_its_own_gpu_in_turn() -> None:
    assert [worker_gpu(i, None, 2) for i in range(4)] == ["0", "1", "0", "1"]
    assert worker_gpu(0, None, 0) is None  # no GPU: nothing to give


def test_gpus_made_visible_from_outside_are_shared_out() -> None:
    assert [worker_gpu(i, "3,5", 8) for i in range(3)] == ["3", "5", "3"]
    assert worker_gpu(0, "", 8) is None  # an empty CUDA_VISIBLE_DEVICES hides every GPU: it stays so


def test_share_sets_the_thread_variables_and_keeps_the_users() -> None:
    environ = {"OMP_NUM_THREADS": "7"}
    applied = share(environ, index=1, workers=2, setting="auto", available=16, gpus=0)
    assert environ["OMP_NUM_THREADS"] == "7"  # the user's
    assert {name: environ[name] for name in THREAD_VARIABLES if name != "OMP_NUM_THREADS"} == dict.fromkeys(
        ["TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", LITERT_THREADS], "8"
    )
    assert "OMP_NUM_THREADS" not in applied and "CUDA_VISIBLE_DEVICES" not in environ


def test_off_leaves_the_threads_and_more_workers_than_gpus_grow_memory() -> None:
    environ: dict[str, str] = {}
    applied = share(environ, index=2, workers=3, setting="off", available=16, gpus=2)
    assert environ == applied == {"CUDA_VISIBLE_DEVICES": "0", "TF_FORCE_GPU_ALLOW_GROWTH": "true"}
    environ = {}
    share(environ, index=1, workers=2, setting="off", available=16, gpus=2)
    assert environ == {"CUDA_VISIBLE_DEVICES": "1"}  # a GPU each: TensorFlow's own memory policy


def test_litert_threads_follow_the_share(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(LITERT_THREADS, "3")
    assert worker_resources.threads() == 3
    monkeypatch.setenv(LITERT_THREADS, "zero")
    assert worker_resources.threads() == worker_resources.cores()
