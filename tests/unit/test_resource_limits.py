"""Memory sizes and CPU-time limits: parsed once, refused clearly everywhere."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError

from django_jobs.compat import InvalidTask, task
from django_jobs.conf import JobsOptions
from django_jobs.sizes import format_size, parse_size, size_or_none
from django_jobs.task import job_limits
from django_jobs.worker import procfs
from django_jobs.worker.options import _cpu_seconds
from django_jobs.worker.resources import Limits, ResourceWatch
from tests import tasks
from tests.unit.fakes import job


def module_level(value: int) -> int:
    return value


@pytest.mark.parametrize(
    ("given", "size"),
    [
        (1, 1),
        (512_000_000, 512_000_000),
        ("512MB", 512_000_000),
        ("512 mb", 512_000_000),
        ("512MiB", 512 * 2**20),
        ("512M", 512 * 2**20),  # bare: binary, as ulimit and Docker read it
        ("1.5GiB", int(1.5 * 2**30)),
        ("1.5GB", 1_500_000_000),
        ("2kB", 2000),
        ("2K", 2048),
        ("100", 100),
        ("100B", 100),
        ("1T", 2**40),
    ],
)
def test_sizes_as_people_write_them(given, size):
    assert parse_size(given) == size


@pytest.mark.parametrize(
    "bad", [0, -1, True, 1.5, "", "MB", "-5MB", "512 XB", "nan", "inf", "0.1B", None]
)
def test_what_is_no_size(bad):
    with pytest.raises(ValueError, match=r"size"):
        parse_size(bad)


@pytest.mark.parametrize(
    ("size", "text"),
    [
        (None, ""),
        (999, "999 B"),
        (612_345_678, "612 MB"),
        (1_500_000_000, "1.50 GB"),
        (12_300_000, "12.3 MB"),
        (980_000, "980 kB"),
    ],
)
def test_sizes_for_people(size, text):
    assert format_size(size) == text


def test_a_task_takes_its_limits_and_using_changes_them():
    limited = task(max_memory="512MB", max_cpu_seconds=30)(module_level)
    assert (limited.max_memory, limited.max_cpu_seconds) == ("512MB", 30)
    assert job_limits(limited) == {"max_memory": 512_000_000, "max_cpu_seconds": 30.0}
    changed = tasks.add.using(max_memory=1024, max_cpu_seconds=0.5)
    assert job_limits(changed) == {"max_memory": 1024, "max_cpu_seconds": 0.5}
    assert job_limits(tasks.add) == {"max_memory": None, "max_cpu_seconds": None}


@pytest.mark.parametrize("bad", [0, -1, "lots", True, "12 parsecs", float("nan")])
def test_a_bad_max_memory_is_refused_where_it_is_written(bad):
    with pytest.raises(InvalidTask, match=r"module_level'.*max_memory: a size"):
        task(max_memory=bad)(module_level)
    with pytest.raises(InvalidTask, match=r"max_memory: a size"):
        tasks.add.using(max_memory=bad)


@pytest.mark.parametrize("bad", [0, -1, "30", True, float("nan"), float("inf")])
def test_a_bad_max_cpu_seconds_is_refused_where_it_is_written(bad):
    message = r"max_cpu_seconds: a CPU time is a number of seconds above zero"
    with pytest.raises(InvalidTask, match=message):
        task(max_cpu_seconds=bad)(module_level)
    with pytest.raises(InvalidTask, match=message):
        tasks.add.using(max_cpu_seconds=bad)


def test_options_take_sizes_and_seconds():
    options = JobsOptions.from_dict(
        {"MAX_MEMORY": "1GiB", "MAX_CPU_SECONDS": 60, "MEMORY_RLIMIT": True}
    )
    assert (options.MAX_MEMORY, options.MAX_CPU_SECONDS) == (2**30, 60.0)
    assert options.MEMORY_RLIMIT is True
    defaults = JobsOptions.from_dict({})
    assert (defaults.MAX_MEMORY, defaults.MAX_CPU_SECONDS) == (None, None)
    assert defaults.MEMORY_RLIMIT is False


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"MAX_MEMORY": -5}, "OPTIONS['MAX_MEMORY']: a size must be more than zero"),
        ({"MAX_MEMORY": "big"}, "OPTIONS['MAX_MEMORY']: a size is a number of bytes"),
        ({"MAX_CPU_SECONDS": 0}, "OPTIONS['MAX_CPU_SECONDS']: a CPU time is"),
        ({"MAX_CPU_SECONDS": False}, "OPTIONS['MAX_CPU_SECONDS']: a CPU time is"),
        ({"MEMORY_RLIMIT": "yes"}, "OPTIONS['MEMORY_RLIMIT'] must be True or False"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(ImproperlyConfigured) as refused:
        JobsOptions.from_dict(options)
    assert message in str(refused.value)


def test_worker_flags():
    def _size(flag, value):
        return size_or_none(value, flag, CommandError)

    assert _size("--max-memory", "512MB") == 512_000_000
    assert _size("--max-memory", None) is None
    assert _cpu_seconds("--max-cpu-seconds", "2.5") == 2.5
    with pytest.raises(CommandError, match=r"^--max-memory: a size is a number"):
        _size("--max-memory", "lots")
    with pytest.raises(CommandError, match=r"--max-memory: a size must be more"):
        _size("--max-memory", "0")
    for bad in ("0", "-1", "nan", "soon"):
        with pytest.raises(CommandError, match=r"^--max-cpu-seconds: a CPU time"):
            _cpu_seconds("--max-cpu-seconds", bad)


def test_a_jobs_own_limits_come_before_the_workers_and_the_options(settings):
    from django_jobs.backend import jobs_backend
    from django_jobs.worker.options import WorkerOptions

    settings.TASKS = {
        "default": {
            "BACKEND": "django_jobs.backend.JobsBackend",
            "OPTIONS": {"MAX_MEMORY": 300, "MAX_CPU_SECONDS": 3},
        }
    }
    backend = jobs_backend("default")
    plain, limited = job(1), job(2)
    limited.max_memory, limited.max_cpu_seconds = 100, 1.0
    by_options = ResourceWatch(WorkerOptions(backend))
    assert by_options.limits(plain) == Limits(300, 3.0)
    by_flag = ResourceWatch(WorkerOptions(backend, max_memory=200))
    assert by_flag.limits(plain) == Limits(200, 3.0)
    assert by_flag.limits(limited) == Limits(100, 1.0)
    assert by_flag.rlimit_for(limited) is None  # MEMORY_RLIMIT is off
    assert not ResourceWatch(None).limits(plain)


@pytest.mark.skipif(not procfs.AVAILABLE, reason="Linux only (/proc)")
def test_the_tree_of_a_process_includes_its_group_and_descendants():
    # A child in its own group forks a grandchild that leaves the group.
    script = (
        "import os, time\n"
        "os.setpgid(0, 0)\n"
        "if os.fork() == 0:\n"
        "    os.setsid(); time.sleep(30); os._exit(0)\n"
        "time.sleep(30)\n"
    )
    child = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            members = procfs.tree(child.pid, procfs.scan())
            if len(members) == 2:
                break
            time.sleep(0.02)
        assert child.pid in members
        assert len(members) == 2
        rss, cpu = procfs.usage(members, procfs.scan())
        assert rss > 1_000_000
        assert cpu >= 0
    finally:
        for pid in members - {child.pid}:
            os.kill(pid, 9)
        child.kill()
        child.wait(timeout=10)


def test_one_scan_samples_every_watched_child_and_keeps_the_peak(monkeypatch):
    from django_jobs.worker import resources

    table = {
        10: procfs.Stat(ppid=1, pgrp=10, cpu=0.0, rss=100),
        11: procfs.Stat(ppid=10, pgrp=10, cpu=0.0, rss=250),  # its grandchild
        20: procfs.Stat(ppid=1, pgrp=20, cpu=5.0, rss=100),
    }
    scans = []
    monkeypatch.setattr(procfs, "scan", lambda: scans.append(1) or table)
    monkeypatch.setattr(procfs, "AVAILABLE", True)
    monkeypatch.setattr(procfs, "read_stat", lambda pid: table[pid])
    watch = ResourceWatch(None)
    big, spinning = job(1), job(2)
    big.max_memory, spinning.max_cpu_seconds = 300, 2.0
    watch.started(10, big)
    watch.started(20, spinning)
    clock = watch.due_at()
    assert watch.sample(clock - 0.001) == {}  # nobody due: no scan
    assert scans == []
    table[20] = procfs.Stat(ppid=1, pgrp=20, cpu=7.5, rss=100)  # 2.5 s since start
    over = watch.sample(clock)
    assert scans == [1]  # one scan for both
    assert set(over) == {10, 20}
    assert over[10].describe() == "used 350 B, limit 300 B"
    assert over[20].describe() == "used 2.5 s of CPU, limit 2 s"
    assert watch.due_at() is None  # neither is sampled again
    assert watch.finished(10).peak == 350  # kept for the attempt's usage
    assert watch.finished(10) is None
    assert resources.Limits() == Limits(None, None)
