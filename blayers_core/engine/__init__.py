"""The engine: turns a model and data into fitted parameters or posterior draws.

Data checks and row/constant splitting, minibatch schedules, compiled initialisation and training
programs, the chunked training loop with its faults and checkpoints, the dry run, NUTS.
It imports only :mod:`blayers_core.contract`.
"""
