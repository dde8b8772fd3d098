"""Time estimates: the clock's arithmetic on given step times (each kind of work at its own rate, a slow first step
left out), the plain lines' time left, and a search's plan counting the image-steps its summary reports."""

import json

import pytest
import torch
from typer.testing import CliRunner

from edgenas.cli.app import app
from edgenas.progress import Bar, Clock, Work


class Timeline:
    """A clock that moves only when told: each step takes the seconds given."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def run_epoch(clock: Clock, timeline: Timeline, seconds: list[float]) -> None:
    """One epoch whose training steps take `seconds` each (what the searcher's loops report to the clock)."""
    for s in seconds:
        timeline.t += s
        clock.tick()
    clock.step()


def plan() -> list[Work]:
    # 4 steps of 64 images per epoch: a probe, 2 supernet epochs, 3 retraining epochs of networks half as costly
    return ([Work("probe", "probe", 256, 4, 1.0)] + [Work("stage 0", "supernet", 256, 4, 1.0)] * 2
            + [Work("retraining", "retraining", 256, 4, 0.5)] * 3)


def test_a_slow_first_step_does_not_inflate_the_estimate_of_the_phases_that_follow():
    timeline, said = Timeline(), []
    clock = Clock(plan(), 0, said.append, now=timeline)
    run_epoch(clock, timeline, [30.0, 1.0, 1.0, 1.0])  # the probe: 30 s of warm-up in its first step, then 1 s steps
    # 1 s per 64 image-steps of cost 1: two supernet epochs of 256 take 8 s, three retraining epochs of cost 0.5 6 s.
    assert clock.left() == pytest.approx(14.0)
    assert len(said) == 1 and said[0].startswith("estimate: about 14 s left (done around ")
    assert "probe 15.62 ms per image-step; supernet, retraining assumed at the probe's speed per FLOP" in said[0]


def test_each_kind_is_estimated_at_its_own_rate_once_measured():
    timeline, said = Timeline(), []
    clock = Clock(plan(), 0, said.append, now=timeline)
    run_epoch(clock, timeline, [30.0, 1.0, 1.0, 1.0])  # probe
    run_epoch(clock, timeline, [9.0, 2.0, 2.0, 2.0])  # supernet: pruning and a checkpoint before its first step
    # The supernet's own rate (2 s per step) for its last epoch; retraining, not measured, at the supernet's rate
    # per unit of cost: 8 s + 3 x 4 steps x 2 s x 0.5.
    assert clock.left() == pytest.approx(8.0 + 12.0)
    run_epoch(clock, timeline, [2.0, 2.0, 2.0, 2.0])
    assert clock.left() == pytest.approx(12.0)
    run_epoch(clock, timeline, [5.0, 0.25, 0.25, 0.25])  # retraining's first epoch: its first step builds the network
    assert clock.left() == pytest.approx(2 * 4 * 0.25)  # its own rate, whatever the probe's and the supernet's were
    run_epoch(clock, timeline, [0.25] * 4)
    run_epoch(clock, timeline, [0.25] * 4)
    # Said after the first epoch, then once per kind newly measured (its own rate replacing an assumed one).
    assert [line.split(":")[0] for line in said] == ["estimate", "estimate updated", "estimate updated"]
    assert said[1].startswith("estimate updated: about 20 s left")
    assert said[2].startswith("estimate updated: about 2 s left")
    assert "probe 15.62 ms, supernet 31.25 ms, retraining 3.91 ms per image-step)" in said[2]  # 0.25 s per 64


def test_a_kind_timed_beforehand_is_estimated_at_that_rate_until_measured_itself():
    timeline, said = Timeline(), []
    # Retraining timed before the run: 0.25 s per step of 64 image-steps of cost 0.5 (32 units).
    clock = Clock(plan(), 0, said.append, now=timeline, prior={"retraining": (0.25, 32.0)}, prior_how="timed before")
    run_epoch(clock, timeline, [30.0, 1.0, 1.0, 1.0])
    assert clock.left() == pytest.approx(8.0 + 3 * 4 * 0.25)  # not the probe's 1 s per step scaled by cost: 6 s
    assert "retraining 3.91 ms per image-step timed before; supernet assumed at the probe's speed" in said[0]
    for _ in range(3):
        run_epoch(clock, timeline, [2.0] * 4)
    assert clock.left() == pytest.approx(2 * 4 * 2.0)  # measured: its own rate
    assert said[-1].startswith("estimate updated: about 16 s left")


def test_a_resumed_run_estimates_only_the_epochs_left():
    timeline, said = Timeline(), []
    clock = Clock(plan(), 3, said.append, now=timeline)  # the probe and the supernet epochs done by another process
    run_epoch(clock, timeline, [5.0, 0.5, 0.5, 0.5])
    assert clock.left() == pytest.approx(2 * 4 * 0.5)
    assert len(said) == 1 and said[0].startswith("estimate: about 4 s left")


def test_plain_lines_say_the_time_left_from_the_steps_after_the_first():
    timeline, lines = Timeline(), []
    bar = Bar(False, lines.append, eta=True, now=timeline)
    bar.begin(10, "profiling")
    for seconds in [20.0, 2.0, 2.0]:  # the first timing builds a session
        timeline.t += seconds
        bar.step("key")
    assert lines == ["profiling [1/10] key", "profiling [2/10] key, about 16 s left",
                     "profiling [3/10] key, about 14 s left"]
    for _ in range(7):
        timeline.t += 2.0
        bar.step("key")
    assert lines[-1] == "profiling [10/10] key"  # done: nothing left to say


def test_steps_of_another_kind_or_that_took_no_time_are_not_what_the_time_left_is_estimated_from():
    timeline, lines = Timeline(), []
    bar = Bar(False, lines.append, eta=True, now=timeline)
    bar.begin(10, "profiling")
    for seconds, measured in [(5.0, False), (5.0, False), (0.0, False), (1.0, True), (0.5, True), (0.5, True)]:
        timeline.t += seconds  # two sessions built, a timing read from a journal, then three timed
        bar.step("key", measured=measured)
    assert lines[:4] == ["profiling [1/10] key", "profiling [2/10] key", "profiling [3/10] key",
                         "profiling [4/10] key"]
    assert lines[4:] == ["profiling [5/10] key, about 2 s left", "profiling [6/10] key, about 2 s left"]


@pytest.fixture
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_the_plan_counts_the_image_steps_the_summary_reports(tmp_path, monkeypatch, _one_thread):
    """A probe, a warm-up, two stages with architecture steps on a search-validation split smaller than a batch,
    short trainings of two candidates and a retraining, each epoch's batches cut with the last partial one dropped:
    the plan said at the start counts exactly the image-steps that the summary reports after the run."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CI", raising=False)
    args = ["search", "--space", "tiny", "--schedule", "0.5:1,1.0:1", "--warmup-epochs", "1", "--score-paths", "4",
            "--batch-size", "16", "--train-per-class", "20", "--test-per-class", "5", "--flops", "250K",
            "--choice", "train", "--choice-candidates", "2", "--choice-epochs", "1", "--retrain-epochs", "1",
            "--out", "run", "--json"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    plan = next(line for line in result.stderr.splitlines() if line.startswith("plan: "))
    assert plan.startswith("plan: probe 1 epoch, warmup 1 epoch, stage 0 1 epoch, stage 1 1 epoch, choice 2 epochs, "
                           "retraining 1 epoch; about ")
    summary = json.loads(result.stdout)
    assert f"about {summary['search_images']:,} image-steps of search and 176 of retraining " in plan
    history = [json.loads(line) for line in (tmp_path / "run" / "history.jsonl").read_text().splitlines()]
    assert [row["images"] for row in history if row.get("phase") == "retrain"] == [176]  # 11 batches of 16 of 180
    # The architecture steps count the search-validation images they took (2 per class), not a batch each.
    stage = next(row for row in history if row.get("phase") == "stage 0" and "epoch" in row)
    assert stage["arch_images"] == 10 * stage["arch_steps"] and stage["arch_steps"] == 2
