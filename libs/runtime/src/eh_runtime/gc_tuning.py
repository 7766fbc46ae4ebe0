"""CPython's cyclic garbage collector, tuned for long-running services on a hot path.

Full collections walk the whole heap (modules, schemas, routes, clients), and the default young
threshold (700 allocations) triggers one chain of them every few requests or events. Two measures
(both services measured this): what exists once the app is built is moved out of the collector's
sight (`gc.freeze`), and the young generation is collected less often. Cyclic garbage is rare on
these paths; reference counting frees the rest as before.
"""

import gc


def tune_gc(young_threshold: int) -> None:
    """Freeze what exists now and collect the young generation every `young_threshold` objects."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(young_threshold, *gc.get_threshold()[1:])
