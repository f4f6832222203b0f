"""parallel.profile on real worker processes: the slow stage named, the numbers behind
it, the picture, the page and the command line."""

import base64
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import seqpipe.parallel.profile as profile_module
from seqpipe.parallel import profile
from seqpipe.pipeline import Pipeline
from seqpipe.pipeline.stages import trace

from ._profiled import SlowSequence, slow_pipeline

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SLOW = "Lambda(slow_batch, on=None)"


@pytest.fixture(scope="module")
def report():
    return profile(slow_pipeline(), batches=40, workers=2)


@pytest.mark.timeout(120)
def test_the_20_ms_stage_is_the_bottleneck_named_as_print_summary_names_it(report):
    names = [stage.name for stage in trace(slow_pipeline(), 1)]
    assert [s.name for s in report.stages] == names
    assert report.bottleneck == SLOW
    slow = report.stages[names.index(SLOW)]
    assert 19.5 <= slow.ms_per_batch <= 60
    assert slow.share > 0.8
    assert sum(s.share for s in report.stages) == pytest.approx(1.0)
    sentence = re.search(r"Bottleneck: (.*)", str(report)).group(1)
    assert sentence.startswith(f"{SLOW} takes {100 * slow.share:.0f} % of worker time: ")
    # It waits rather than computes: more workers than CPUs would pay; and it comes
    # before the random flip, so caching can skip it.
    assert "raise workers to " in sentence
    assert "cache the stages before [random] RandomFlip(on=0) with `seq.cache(...)`" in sentence


@pytest.mark.timeout(120)
def test_bytes_in_and_out_of_each_stage(report):
    by_name = {s.name: s for s in report.stages}
    images, labels = 8 * 8 * 8 * 3 * 4, 8 * 8  # float32 images, int64 labels
    assert by_name["source 0: ndarray(640, 8, 8, 3)"].bytes_out == images
    assert by_name["source 1: ndarray(640,)"].bytes_out == labels
    assert by_name["batch(size=8, shuffle=False)"].bytes_out == images + labels
    assert (by_name["Normalize(on=0)"].bytes_in, by_name[SLOW].bytes_out) == (
        images + labels,
        images + labels,
    )
    assert by_name["source 0: ndarray(640, 8, 8, 3)"].bytes_in is None


@pytest.mark.timeout(120)
def test_workers_consumer_throughput_and_overhead(report):
    assert report.batches == 40
    assert len(report.workers) == 2
    for worker in report.workers:
        assert worker.busy_s > 0.1
        assert worker.blocked_s == 0.0  # 6 KB batches travel inside the pipe
        assert worker.busy_s + worker.idle_s <= report.seconds + 0.05
    # Two workers, each ~20 ms a batch: the consumer, which needs no time, waits.
    assert report.wait_fraction > 0.5
    assert 20 <= report.throughput <= 2 / 0.02 * 1.1
    assert report.cpu_demand < 0.5
    assert 0 < report.overhead_us < 200
    assert report.overhead_fraction < 0.03
    assert f"{report.overhead_us:.1f} us a batch" in str(report)
    # 20 ms batches: recording costs far below 1 % of one, so every batch is recorded.
    assert report.recorded == report.batches
    assert "recorded on every batch" in str(report)
    assert sum(len(stages) for stages in report.timeline.stages.values()) == 40 * 6


@pytest.mark.timeout(120)
def test_the_plot_and_the_page(report, tmp_path):
    import matplotlib.image

    path = str(tmp_path / "profile.png")
    report.plot(path)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 1000
    assert len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 8  # in colour
    page = report.to_html(str(tmp_path / "profile.html"))
    assert (tmp_path / "profile.html").read_text() == page
    encoded = re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(encoded).startswith(b"\x89PNG\r\n\x1a\n")
    assert SLOW in page and "<script" not in page


@pytest.mark.timeout(120)
def test_batches_cheaper_than_a_recording_are_sampled():
    # NOTE [ Sampled recording ]: batches of a few microseconds are recorded on a
    # sample, so that the profile costs them about 1 % instead of a sixth.
    seq = Pipeline(np.arange(200_000), batch_size=8)
    report = profile(seq, batches=4000, workers=2)
    assert 0 < report.recorded < report.batches / 3
    drawn = sum(len(stages) for stages in report.timeline.stages.values())
    assert drawn == report.recorded * 2  # source and batch plan, recorded batches only
    assert [s.name for s in report.stages] == [s.name for s in trace(seq, 1)]
    assert sum(s.share for s in report.stages) == pytest.approx(1.0)
    assert all(0 < s.ms_per_batch < 1 for s in report.stages)
    assert report.overhead_fraction <= 0.02
    assert f"recorded on {report.recorded} of 4000 batches (each recording" in str(report)


@pytest.mark.timeout(120)
def test_a_sequence_is_one_stage_and_its_epoch_does_not_end():
    seq = SlowSequence(batches=12)
    report = profile(seq, batches=50, workers=1)
    assert report.batches == 11  # one epoch, less the unmeasured first batch
    assert report.bottleneck == "sequence: SlowSequence"
    assert seq.epochs_ended == 0


@pytest.mark.timeout(120)
def test_auto_lists_its_decisions():
    report = profile(slow_pipeline(4000), batches=200, workers="auto")
    assert report.decisions and report.decisions[0].after > report.decisions[0].before
    assert "workers='auto' decisions:" in str(report)


@pytest.mark.timeout(180)
def test_the_command_line_writes_the_report(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "seqpipe.parallel.profile",
            "tests.parallel._profiled:slow_pipeline",
            "--batches",
            "20",
            "--workers",
            "2",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=170,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"Bottleneck: {SLOW} takes" in out.stdout
    assert {p.name for p in tmp_path.iterdir()} == {"profile.png", "profile.html", "profile.txt"}


def test_the_module_is_the_function():
    # `seqpipe.parallel.profile` is bound to the module once it is imported as one.
    assert callable(profile_module)
    assert profile_module.profile is profile or profile is profile_module
