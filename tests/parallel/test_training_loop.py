"""The training loop's input-wait warning: its threshold and that it warns only once."""

import warnings

from seqpipe.parallel.training_loop import InputBoundWarning


def test_input_wait_over_20_percent_warns_once_per_trainer():
    warning = InputBoundWarning()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warning.check(0.2, epoch=0, workers=2)  # at the threshold: no warning
        assert caught == []
        warning.check(0.21, epoch=1, workers=2)
        warning.check(0.9, epoch=2, workers=2)  # later epochs stay silent
    assert [str(w.message) for w in caught] == [
        "The input pipeline is the bottleneck: the training loop waited for batches 21% "
        "of epoch 1. Raise workers= (now 2) or use_multiprocessing=True; "
        "print_summary(seq) shows the slow stage"
    ]
