"""The engine: turns a model and data into fitted parameters or posterior draws.

Data checks and the row/constant rule (``data``), minibatch schedules, compiled initialisation and
training programs with their caches (``program``, ``program_cache``), the chunked training loop
with its faults and checkpoints (``runner``, ``checkpoint``, written through ``atomic``), row-chunked
evaluation (``chunks``: the dry run, predictions, the ArviZ export), the dry run, NUTS (``mcmc``).
It imports only :mod:`blayers_core.contract`.
"""
