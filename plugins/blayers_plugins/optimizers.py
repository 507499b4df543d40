"""First-party optimizers: the common optax transformations under registry names.

Each factory is called as ``factory(learning_rate, **config)`` where ``learning_rate`` is a float
or an optax schedule, and returns an ``optax.GradientTransformation``.
"""

from __future__ import annotations

import optax

#: Registered name -> optimizer factory.
OPTIMIZERS = {
    "adam": optax.adam,
    "adamw": optax.adamw,
    "adamax": optax.adamax,
    "adabelief": optax.adabelief,
    "adagrad": optax.adagrad,
    "lamb": optax.lamb,
    "lion": optax.lion,
    "nadam": optax.nadam,
    "radam": optax.radam,
    "rmsprop": optax.rmsprop,
    "sgd": optax.sgd,
    "yogi": optax.yogi,
}
