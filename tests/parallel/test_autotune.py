"""workers="auto": the tuner's decisions, and real enqueuers tuning their worker processes
(I/O-bound, CPU-bound, under a RAM budget, and exactly-once through scale events)."""

import logging
import os
import re
import signal
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from seqpipe.parallel import AutoWorkers, OrderedEnqueuer
from seqpipe.parallel.autotune import AutoTuner, Window, auto_workers
from seqpipe.parallel.process_usage import private_rss_bytes
from seqpipe.pipeline import Pipeline
from seqpipe.transforms import Lambda

from ._profiled import ballast_batch, burn_batch, nap_batch, slow_batch

MB = 2**20


def _window(workers=1, rate=50.0, wait=0.9, busy=1.0, demand=1.0, worker_mb=30, segment_mb=0):
    return Window(0.5, workers, rate, wait, busy, demand, worker_mb * MB, segment_mb * MB, 0)


# -- decisions (no processes) -------------------------------------------------------------


def test_it_grows_while_the_consumer_waits_and_undoes_a_growth_that_did_not_pay():
    tuner = AutoTuner(AutoWorkers(cpu_budget=8), max_workers=10)
    assert tuner.decide(_window(1, 50.0), now=1.0).after == 2
    # Linear: 1 -> 2 doubled the rate, so the next step is twice as large.
    assert tuner.decide(_window(2, 100.0), now=2.0).after == 4
    undo = tuner.decide(_window(4, 102.0), now=3.0)
    assert (undo.before, undo.after) == (4, 2)
    assert "did not rise" in undo.reason
    # The count that did not pay is a ceiling for 2 s, then tried again; failing again,
    # it waits twice as long.
    assert tuner.decide(_window(2, 100.0), now=4.0) is None
    assert tuner.decide(_window(2, 100.0), now=5.5).after == 3
    assert tuner.decide(_window(3, 100.0), now=6.0).after == 2
    assert tuner.decide(_window(2, 100.0), now=9.0) is None
    assert tuner.decide(_window(2, 100.0), now=10.5).after == 3


def test_it_shrinks_idle_workers_when_the_consumer_does_not_wait():
    tuner = AutoTuner(AutoWorkers(cpu_budget=8), max_workers=10)
    decision = tuner.decide(_window(4, 100.0, wait=0.0, busy=1.2), now=1.0)
    assert (decision.before, decision.after) == (4, 3)
    assert "idle" in decision.reason
    assert tuner.decide(_window(4, 100.0, wait=0.0, busy=3.5), now=2.0) is None


def test_cpu_bound_workers_stay_within_the_cpu_budget_and_io_bound_ones_may_pass_it():
    cpu = AutoTuner(AutoWorkers(cpu_budget=2), max_workers=10)
    assert cpu.limit(_window(2, demand=0.9))[0] == 2
    assert cpu.decide(_window(2, 100.0, demand=0.9), now=1.0) is None
    io = AutoTuner(AutoWorkers(cpu_budget=2), max_workers=10)
    assert io.limit(_window(2, demand=0.05))[0] == 10  # max_queue_size bounds it
    assert io.limit(_window(2, demand=0.4))[0] == 5


def test_the_ram_budget_caps_the_count_and_says_why():
    tuner = AutoTuner(AutoWorkers(cpu_budget=16, ram_budget_mb=100), max_workers=10)
    limit, why = tuner.limit(_window(1, worker_mb=30, segment_mb=5, demand=0.01))
    assert limit == 3  # 3 * 30 + 5 = 95 MB; 4 would need 125
    assert "ram_budget_mb=100: 4 workers would need ~125 MB" in why


def test_budgets_go_with_auto_only():
    assert auto_workers("auto", ram_budget_mb=64) == AutoWorkers(None, 64)
    with pytest.raises(ValueError, match="fixed count"):
        auto_workers(2, cpu_budget=2)
    with pytest.raises(ValueError, match="not both"):
        auto_workers(AutoWorkers(cpu_budget=2), cpu_budget=2)
    with pytest.raises(ValueError, match="cpu_budget must be a number > 0"):
        AutoWorkers(cpu_budget=0)
    enqueuer = OrderedEnqueuer(Pipeline(np.arange(4), 2), use_multiprocessing=False)
    with pytest.raises(ValueError, match="use_multiprocessing=True"):
        enqueuer.start(workers="auto")


# -- real worker processes ----------------------------------------------------------------


def _rate(enqueuer, skip, count, watch=None):
    """Batches per second over ``count`` batches after ``skip``; ``watch`` sees the
    worker count after every batch."""
    batches = enqueuer.get()
    for _ in range(skip):
        next(batches)
        if watch is not None:
            watch.append(enqueuer.worker_count)
    started = time.perf_counter()
    for _ in range(count):
        next(batches)
        if watch is not None:
            watch.append(enqueuer.worker_count)
    return count / (time.perf_counter() - started)


def _sleeping(samples=8000):
    return Pipeline(np.arange(samples), batch_size=8) | Lambda(slow_batch)


@pytest.mark.timeout(180)
def test_an_io_bound_pipeline_reaches_three_times_one_worker():
    with OrderedEnqueuer(_sleeping(), use_multiprocessing=True) as one:
        one.start(workers=1)
        single = _rate(one, 5, 60)
    with OrderedEnqueuer(_sleeping(), use_multiprocessing=True) as auto:
        auto.start(workers="auto")
        tuned = _rate(auto, 500, 200)
        decisions = auto.monitor.decisions
        assert auto.worker_count >= 4, decisions
    # 20 ms batches that wait rather than compute: more workers than the 2 CPUs pay.
    assert tuned >= 3 * single, (tuned, single, [str(d) for d in decisions])
    assert decisions[0].before == 1 and decisions[0].after == 2


@pytest.mark.timeout(180)
@pytest.mark.parametrize("budget", [None, 1])
def test_a_cpu_bound_pipeline_never_runs_more_workers_than_the_cpu_budget(budget):
    seq = Pipeline(np.arange(1200), batch_size=8) | Lambda(burn_batch)
    allowed = budget or len(os.sched_getaffinity(0))
    counts = []
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers="auto", cpu_budget=budget)
        _rate(enqueuer, 0, 120, watch=counts)
        decisions = enqueuer.monitor.decisions
    assert max(counts) <= allowed, (counts, [str(d) for d in decisions])
    assert all(d.after <= allowed for d in decisions)


@pytest.mark.timeout(240)
def test_a_ram_budget_below_what_four_workers_need_caps_the_count_and_the_log_says_why(
    caplog,
):
    seq = Pipeline(np.arange(8000), batch_size=8) | Lambda(ballast_batch)
    with OrderedEnqueuer(seq, use_multiprocessing=True) as one:
        one.start(workers=1)
        _rate(one, 3, 3)
        (clock,) = one.stats().per_worker
        per_worker = private_rss_bytes(clock.pid)
    budget_mb = 3.5 * per_worker / MB
    counts = []
    with (
        caplog.at_level(logging.DEBUG, logger="seqpipe.parallel.autotune"),
        OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer,
    ):
        enqueuer.start(workers="auto", ram_budget_mb=budget_mb)
        _rate(enqueuer, 0, 500, watch=counts)
    messages = [r.getMessage() for r in caplog.records]
    assert 2 <= max(counts) <= 3, (counts, messages)
    # Why it stopped growing: the next count's memory, over the budget.
    why = [re.search(r"ram_budget_mb=\d+: (\d+) workers would need ~\d+ MB", m) for m in messages]
    assert any(w and int(w.group(1)) == max(counts) + 1 for w in why), messages


@st.composite
def _scale_events(draw):
    n = draw(st.integers(20, 120))
    batch_size = draw(st.integers(1, 7))
    batches = -(-n // batch_size)
    events = draw(
        st.lists(
            st.tuples(st.integers(0, 2 * batches - 1), st.sampled_from(["add", "retire", "kill"])),
            max_size=8,
        )
    )
    return n, batch_size, draw(st.integers(0, 2**16)), sorted(events)


@pytest.mark.timeout(600)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_scale_events())
def test_every_batch_exactly_once_in_order_through_scale_events(case):
    n, batch_size, seed, events = case
    seq = Pipeline(np.arange(n), batch_size=batch_size, shuffle=True, seed=seed) | Lambda(nap_batch)
    reference = Pipeline(np.arange(n), batch_size, shuffle=True, seed=seed)
    expected = [[b.tolist() for b in reference] for _ in range(2)]  # each pass, an epoch
    with OrderedEnqueuer(seq, use_multiprocessing=True) as enqueuer:
        enqueuer.start(workers="auto", max_queue_size=6)
        enqueuer.monitor.tuning = None  # only the injected events change the count
        pool = enqueuer._executor.pool
        got, position = [], 0
        pending = list(events)
        for _ in range(2):
            epoch = []
            for batch in enqueuer.iter_epoch():
                while pending and pending[0][0] <= position:
                    _, kind = pending.pop(0)
                    if kind == "add":
                        pool.add_worker()
                    elif kind == "retire":
                        pool.retire_worker()
                    else:
                        os.kill(pool.worker_pids()[0], signal.SIGKILL)
                epoch.append(batch.tolist())
                position += 1
            got.append(epoch)
    assert got == expected
