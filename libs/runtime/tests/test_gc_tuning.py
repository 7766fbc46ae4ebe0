import gc

from eh_runtime.gc_tuning import tune_gc


def test_tune_gc_raises_the_young_threshold_and_keeps_the_older_ones():
    before = gc.get_threshold()
    try:
        tune_gc(123_456)
        assert gc.get_threshold() == (123_456, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
