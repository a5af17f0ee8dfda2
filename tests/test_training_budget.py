"""The training budget: which examples a run cut short trains on, when it stops, and the
learning-rate schedule over the steps it really takes (a fake clock: a step costs what the
test says)."""

from __future__ import annotations

import random

import pytest

from ragrec.models import budget as budget_module
from ragrec.models.budget import StepBudget, by_query_rounds


def test_any_prefix_of_the_order_covers_as_many_queries_as_it_can():
    items = [(q, n) for q, count in (("a", 5), ("b", 1), ("c", 3), ("d", 2)) for n in range(count)]
    order = by_query_rounds(items, lambda item: item[0], random.Random(7))
    assert sorted(order) == sorted(items)  # nothing lost, nothing twice
    assert {q for q, _ in order[:4]} == {"a", "b", "c", "d"}  # one of each first
    assert {q for q, _ in order[4:7]} == {"a", "c", "d"}  # then a second of each that has one
    assert order == by_query_rounds(items, lambda item: item[0], random.Random(7))


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    fake = FakeClock()
    monkeypatch.setattr(budget_module.time, "monotonic", fake)
    return fake


def _train(budget: StepBudget, clock: FakeClock, seconds_per_step: float) -> list[float]:
    factor = budget.lr_factor(0.1)
    rates = []
    while True:
        rates.append(factor(budget.steps))
        clock.now += seconds_per_step
        if not budget.step_done():
            return rates


def test_the_clock_ends_a_run_that_cannot_finish_its_data_in_time(clock):
    budget = StepBudget(data_steps=1000, max_seconds=600, reserve=30)
    rates = _train(budget, clock, seconds_per_step=10)
    assert budget.stopped_by == "max_minutes" and budget.steps == 57  # (600 - 30) / 10
    assert clock.now - budget.started <= 600 - 30
    assert rates[0] < rates[5] and rates[-1] < 0.05  # warm-up, then decay to the end
    assert budget.report()["seconds_per_step"] == 10.0


def test_max_steps_and_the_data_end_a_run_before_the_clock(clock):
    steps = StepBudget(data_steps=1000, max_steps=20, max_seconds=600)
    _train(steps, clock, 1)
    assert (steps.stopped_by, steps.steps) == ("max_steps", 20)
    data = StepBudget(data_steps=12, max_seconds=600)
    _train(data, clock, 1)
    assert (data.stopped_by, data.steps) == ("data", 12)


def test_a_budget_without_time_left_is_refused():
    with pytest.raises(ValueError, match="max minutes must be above 0"):
        StepBudget(data_steps=10, max_seconds=0)
    with pytest.raises(ValueError, match="max steps must be at least 1"):
        StepBudget(data_steps=10, max_steps=0)
