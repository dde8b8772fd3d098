"""Shared test set-up: a private FLOPs cache per test session, so tests never touch the user's cache; `cuda` tests
skipped, with the reason, where no GPU is visible."""

import os

import pytest
import torch

from edgenas.space.spec import get_space

# Issue 14's mechanisms at their smallest that still runs each (a 1-epoch warm-up, 8 scored paths), and no report
# (its four plots cost more than a tiny search): for search tests that are not about them; tests/test_strategies.py
# tests the mechanisms themselves (and the opt-in --choice eval), tests/test_report.py the report.
CHEAP = {"warmup_epochs": 1, "score_paths": 8, "report": False}
CHEAP_ARGS = ["--warmup-epochs", "1", "--score-paths", "8", "--no-report"]
# 40 training and 10 test digits a class (of about 180): for tests of what a search does, not of what it reaches.
SMALL_DATA = {"train_per_class": 40, "test_per_class": 10}
SMALL_DATA_ARGS = ["--train-per-class", "40", "--test-per-class", "10"]


def pytest_configure(config):
    """Under pytest-xdist (`make test` runs two workers), one intra-op thread per worker and per command a test
    starts: two workers of two threads each would fight for the 2 cores that the suite is sized for."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ["OMP_NUM_THREADS"] = "1"
        torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("EDGENAS_CACHE_DIR", str(tmp_path_factory.mktemp("edgenas-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def one_thread():
    """Tiny networks: intra-op threads only add overhead, and on a loaded machine a lot of it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny():
    return get_space("tiny")


@pytest.fixture(scope="session")
def tiny_int8_table(tmp_path_factory):
    """A real INT8 table of `tiny` (pieces and 5 validation networks quantised, then timed in ONNX Runtime), made
    once for the tests that read, search with and export against one: (path, table)."""
    from edgenas.profiling.profiler import profile

    out = tmp_path_factory.mktemp("int8-table") / "tiny-i8-int8.json"
    return profile("tiny-i8", get_space("tiny"), int8=True, validate=3, out=out, warmup=2, repeats=5, passes=2,
                   progress=False)


def default_sigint() -> None:
    """`preexec_fn` for a child that a test interrupts with SIGINT: a shell that starts a job in the background
    (`make test &`, nohup) ignores SIGINT for it, every child inherits that, and Python then installs no
    KeyboardInterrupt handler, so Ctrl-C would never reach the command under test."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items):
    """Files that hold a `slow` test run first (the order within a file kept): under pytest-xdist a long test
    started last runs alone at the end while the other worker waits. `cuda` tests need a CUDA GPU: where none is
    visible they are skipped, and the summary says why."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.path not in slow_files)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU and none is visible (benchmarks/gpu_check.sh runs the cuda tests "
                                   "where one is lent)")
    for item in items:
        if item.get_closest_marker("cuda") is not None:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A tiny searched and retrained run, made once for the tests that export it (tests/test_export.py,
    tests/test_runtimes.py); they write their files elsewhere and change only copies of it."""
    from edgenas.runs.settings import SearchSettings
    from edgenas.searching.run import search

    out = tmp_path_factory.mktemp("export") / "run"
    search(SearchSettings(space="tiny", schedule="0.5:1,1.0:1", retrain_epochs=2, batch_size=128, flops=300_000,
                          **CHEAP), out=out, progress=False, log=lambda *a: None)
    return out
