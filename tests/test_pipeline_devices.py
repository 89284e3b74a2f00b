"""Device assignment: one worker per GPU (checked with a pretend GPU count), threads split the CPU."""

import threading

import featvis_pipeline.devices as devices


def test_thread_workers_take_one_gpu_each(monkeypatch):
    monkeypatch.setattr(devices, "gpu_count", lambda: 2)
    monkeypatch.setattr(devices, "_counter", iter(range(100)))
    seen, barrier = [], threading.Barrier(2)

    def worker():
        barrier.wait()
        first = devices.current()
        seen.append((first, devices.current()))  # a worker keeps its device

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(str(a) for a, _ in seen) == ["cuda:0", "cuda:1"]
    assert all(a == b for a, b in seen)
    assert devices.worker_count(requested=7) == 2  # GPUs decide the worker count


def test_cpu_workers_share_the_cores(monkeypatch):
    monkeypatch.setattr(devices, "gpu_count", lambda: 0)
    monkeypatch.setattr(devices.os, "cpu_count", lambda: 8)
    assert devices.worker_count(requested=None) == 1 and devices.worker_count(requested=4) == 4
    assert devices.cpu_threads(4) == 2 and devices.cpu_threads(16) == 1
    result = []
    t = threading.Thread(target=lambda: result.append(str(devices.current())))
    t.start()
    t.join()
    assert result == ["cpu"]
