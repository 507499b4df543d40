r"""Which rows make up each minibatch, and how padded rows are kept out of the loss.

Schedule
--------
With ``n`` rows and batch size ``B`` an epoch has ``S = ceil(n / B)`` steps over ``S * B`` *slots*;
the ``S * B - n`` slots past the data are padding. Slots are grouped in blocks of ``b`` consecutive
slots (``b`` divides ``B``, at most 256 and at most ``B / 4``). Epoch ``e`` visits block ``j`` in position

    pi_e(j) = (a_e * j + c_e) mod (S * B / b),       gcd(a_e, S * B / b) = 1,

an affine bijection drawn afresh every epoch from the key ``fold_in(key, e)``. So every row is seen
exactly once per epoch, batch composition changes from epoch to epoch, and each step needs only
``O(B)`` work (no ``O(n)`` permutation on the device). Rows are shuffled once on the host before
training so that the blocks themselves are random.

Padding and weights
-------------------
A batch always has ``B`` slots, so the training step compiles once. Padding slots point at a real
row (so every value is finite) and are masked out of every observed site by :class:`padded_rows`.

The minibatch loss multiplies every observed site by ``N / B`` (``N = n``, the loss's
``num_obs``). When ``B`` divides ``N`` that is the whole story: an epoch is ``S = N / B`` batches
of ``B`` real rows, every row weighs ``N / B = S`` in its batch, and the mean of the ``S`` batch
losses is the full-data loss. When it does not, the ``S * B - N`` padding slots fall in one or
more of the epoch's batches (the last one when not shuffled), and :class:`padded_rows` multiplies
the real rows of *every* batch by the constant :attr:`BatchSchedule.row_weight`

.. math::
    w = \frac{S B}{N} \ge 1,

so that with the loss's ``N / B`` each real row weighs exactly ``S`` and padding weighs ``0``.
Every row appears once per epoch, so over an epoch of ``S`` steps, with the latent draw ``z``
held fixed,

.. math::
    \frac{1}{S} \sum_{s=1}^{S} \Big[ S \sum_{i \in b_s} \log p(y_i \mid z)
        + \log p(z) - \log q(z) \Big]
    = \sum_{i=1}^{N} \log p(y_i \mid z) + \log p(z) - \log q(z),

the full-data ELBO, for any batch size and any batch order: every row weighs one per epoch and
a short batch is not weighted up. (Weighting a batch's ``r`` real rows by ``N / r`` instead gives
the rows of a short batch ``B / r`` times the weight of the others.) ``w`` is the same for every
batch, so a ragged schedule still compiles a single step.

Handler order: the training step runs the loss inside ``padded_rows``, so its
``process_message`` comes last, after the model's plates and the loss's ``N / B``, and multiplies
whatever scale the site has by ``w``. A site scaled by its own subsampling plate
(``numpyro.plate("data", N, subsample_size=B)``, which the loss leaves alone) ends at ``S`` too.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import attrs
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.primitives import Messenger

from blayers_core.contract._typing import Array
from blayers_core.contract.scaling import multiply_scale

#: Largest block of consecutive (once-shuffled) rows moved together. Gathering whole blocks is
#: what keeps a step near memory bandwidth on large data: at n=1M x d=100, batch 1024, blocks of
#: 256 rows took 113 us a step against 167 us for blocks of 16 (benchmarks/engine.py).
MAX_BLOCK_ROWS = 256


def _block_size(batch_size: int, preferred: int = MAX_BLOCK_ROWS, num_devices: int = 1) -> int:
    """Largest power of two ``<= min(preferred, batch_size / 4)`` that divides
    ``batch_size / num_devices``.

    A batch always mixes at least four blocks (when ``batch_size >= 4``); on ``D`` devices (``D``
    divides ``batch_size``) its ``batch_size / b`` blocks are a multiple of ``D``, so each device
    can hold an equal share of every batch (:mod:`blayers_core.engine.devices`). ``D = 1`` is the
    one-device rule; the block size, and so the batches, are the same on ``D`` devices whenever
    ``D`` divides the one-device blocks per batch.
    """
    limit = min(preferred, max(1, batch_size // 4))
    share = batch_size // num_devices if batch_size % num_devices == 0 else batch_size
    block = 1
    while block * 2 <= limit and share % (block * 2) == 0:
        block *= 2
    return block


def _units_mod(m: int) -> np.ndarray:
    """The integers in ``[1, m)`` coprime to ``m`` (``[1]`` when ``m == 1``)."""
    if m == 1:
        return np.ones(1, dtype=np.int32)
    candidates = np.arange(1, m, dtype=np.int64)
    units: np.ndarray = candidates[np.gcd(candidates, m) == 1].astype(np.int32)
    return units


class EpochTable(NamedTuple):
    """Block permutations ``(a_e, c_e)`` of consecutive epochs from ``first_epoch`` on."""

    first_epoch: Array
    multipliers: Array
    offsets: Array


@attrs.frozen
class BatchSchedule:
    """Row indices and masks for every step of a minibatch run.

    Args:
        num_rows: ``n``, rows in the data.
        batch_size: ``B``, slots per batch (``1 <= B``; ``B >= n`` means one full batch a step).
        shuffle: draw a new block order every epoch (``False``: rows in order).
        num_devices: ``D``, devices that share every batch (``fit(..., devices=...)``); the block
            size is chosen so that a batch's blocks are a multiple of ``D``. ``1``: one device.
        min_steps_per_epoch: at least this many steps (``S``) per epoch. Several processes
            (:mod:`blayers_core.engine.devices`) need enough slots that each device's share
            holds the rows it is given; ``1``: ``S = ceil(n / B)``.
        always_blocks: gather every batch block by block, with a padding mask, even when one
            batch holds all ``n`` rows (several processes: each device's share is padded).
    """

    num_rows: int = attrs.field(validator=attrs.validators.gt(0))
    batch_size: int = attrs.field(validator=attrs.validators.gt(0))
    shuffle: bool = True
    num_devices: int = attrs.field(default=1, validator=attrs.validators.gt(0))
    min_steps_per_epoch: int = attrs.field(default=1, validator=attrs.validators.gt(0))
    always_blocks: bool = False
    block_size: int = attrs.field(init=False)
    units: np.ndarray = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if self.batch_size > self.num_rows:
            object.__setattr__(self, "batch_size", self.num_rows)
        block = _block_size(self.batch_size, num_devices=self.num_devices)
        object.__setattr__(self, "block_size", block)
        object.__setattr__(self, "units", _units_mod(self.num_blocks))

    @property
    def steps_per_epoch(self) -> int:
        return max(math.ceil(self.num_rows / self.batch_size), self.min_steps_per_epoch)

    @property
    def num_slots(self) -> int:
        return self.steps_per_epoch * self.batch_size

    @property
    def num_blocks(self) -> int:
        return self.num_slots // self.block_size

    @property
    def is_full_batch(self) -> bool:
        """One batch holds every row in order; no gather, no padding."""
        return self.batch_size == self.num_rows and not self.always_blocks

    @property
    def has_padding(self) -> bool:
        return self.num_slots != self.num_rows

    @property
    def row_weight(self) -> float:
        """``w = S * B / n``: what :class:`padded_rows` multiplies every real row by.

        With a minibatch loss's ``n / B`` a real row then weighs ``S`` (the steps per epoch) in
        every batch, so the mean loss over an epoch is the full-data loss. ``1.0`` exactly when
        there is no padding (``B`` divides ``n``).
        """
        return self.num_slots / self.num_rows

    @property
    def shuffles_blocks(self) -> bool:
        """Each epoch draws its own block order (shuffling on, more than one block)."""
        return self.shuffle and self.num_blocks > 1

    def epoch_permutation(self, epoch: Array | int, key: Array) -> tuple[Array, Array]:
        """``(a_e, c_e)`` of epoch ``e``'s block order ``pi_e(j) = (a_e j + c_e) mod (S B / b)``."""
        k_a, k_c = jax.random.split(jax.random.fold_in(key, epoch))
        units = jnp.asarray(self.units)
        a = units[jax.random.randint(k_a, (), 0, units.shape[0])]
        c = jax.random.randint(k_c, (), 0, self.num_blocks)
        return a, c

    def epoch_permutations(self, first_epoch: Array | int, count: int, key: Array) -> EpochTable:
        """The permutations of epochs ``first_epoch .. first_epoch + count - 1``, drawn at once.

        A compiled chunk of steps draws them once instead of once per step (four Threefry
        hashes a step are about 15 us on a CPU); :meth:`block_order` reads them from the table.
        """
        epochs = jnp.asarray(first_epoch, dtype=jnp.int32) + jnp.arange(count, dtype=jnp.int32)
        a, c = jax.vmap(lambda e: self.epoch_permutation(e, key))(epochs)
        return EpochTable(jnp.asarray(first_epoch, dtype=jnp.int32), a, c)

    def chunk_permutations(
        self, first_step: Array | int, num_steps: int, key: Array
    ) -> EpochTable | None:
        """The permutations of every epoch that steps ``first_step .. first_step + num_steps - 1``
        can reach (``None`` when epochs are not shuffled)."""
        if not self.shuffles_blocks:
            return None
        reach = (num_steps - 1) // self.steps_per_epoch + 2
        return self.epoch_permutations(first_step // self.steps_per_epoch, reach, key)

    def block_order(
        self, step: Array | int, key: Array, table: EpochTable | None = None
    ) -> tuple[Array, Array]:
        """The blocks of global ``step``'s batch, ``(B / b,)`` int32 in slot order, and the
        real-slot mask ``(B,)`` bool. Block ``j`` holds slots ``j*b .. j*b + b - 1``.

        ``table`` (from :meth:`epoch_permutations`, covering ``step``'s epoch) saves drawing the
        epoch's permutation again. Traceable: ``step`` may be a traced integer.
        """
        step = jnp.asarray(step, dtype=jnp.int32)
        epoch = step // self.steps_per_epoch
        within = step % self.steps_per_epoch
        per_batch = self.batch_size // self.block_size
        block = within * per_batch + jnp.arange(per_batch, dtype=jnp.int32)
        if self.shuffles_blocks:
            if table is None:
                a, c = self.epoch_permutation(epoch, key)
            else:
                a, c = (
                    table.multipliers[epoch - table.first_epoch],
                    table.offsets[epoch - table.first_epoch],
                )
            # int64-free modular product: a, block < num_blocks < 2**31 / 2 for realistic data.
            block = (a.astype(jnp.uint32) * block.astype(jnp.uint32) + c.astype(jnp.uint32)) % (
                jnp.uint32(self.num_blocks)
            )
            block = block.astype(jnp.int32)
        return block, self._slots(block) < self.num_rows

    def _slots(self, blocks: Array) -> Array:
        """The ``(len(blocks) * b,)`` slots of ``blocks``, block after block."""
        return (blocks[:, None] * self.block_size + jnp.arange(self.block_size)).reshape(-1)

    def real_slots(self, blocks: Array) -> Array:
        """``(len(blocks) * b,)`` bool: which slots of ``blocks`` (block after block) hold a row
        of the data rather than padding."""
        return self._slots(blocks) < self.num_rows

    def indices(self, step: Array | int, key: Array) -> tuple[Array, Array]:
        """Row indices ``(B,)`` int32 and real-row mask ``(B,)`` bool for global ``step``.

        Padding slots point at a real row: slot ``s >= n`` at row ``s - n``. Traceable.
        """
        block, mask = self.block_order(step, key)
        slot = self._slots(block)
        return jnp.where(mask, slot, slot - self.num_rows), mask

    def slot_rows(self) -> np.ndarray:
        """``(num_slots,)``: the row behind every slot (padding slot ``s`` repeats row ``s - n``).

        Data laid out in slot order (``x[slot_rows()]``) can be cut into whole blocks of
        consecutive rows, which is what :meth:`block_order` indexes.
        """
        slots = np.arange(self.num_slots)
        return np.where(slots < self.num_rows, slots, slots - self.num_rows)


def gather_blocks(array: Array, blocks: Array, block_size: int) -> Array:
    """Rows of ``blocks`` from ``array`` laid out in slot order: ``(len(blocks) * b, ...)``.

    ``array`` has ``num_slots`` rows; it is viewed as ``(num_blocks, b, ...)`` and whole blocks
    are copied, so a batch is a few contiguous copies rather than ``B`` single-row gathers.
    """
    shape = jnp.shape(array)
    by_block = jnp.reshape(array, (shape[0] // block_size, block_size, *shape[1:]))
    return jnp.reshape(jnp.take(by_block, blocks, axis=0), (-1, *shape[1:]))


class padded_rows(Messenger):  # type: ignore[misc]
    r"""Mask padding rows out of every observed site and multiply the real rows by a weight.

    For an observed site with rows ``i = 1..B`` and log density ``l_i``, the site's scale
    becomes ``scale * weight`` and its masked log density ``m_i l_i`` (``m`` the row mask), so
    it adds

    .. math::
        \text{scale} \cdot \text{weight} \sum_{i=1}^{B} m_i \, l_i .

    ``weight`` defaults to ``B / n_real`` (``n_real = sum(m)``): the ``n_real`` real rows count as
    a whole batch of ``B``, so under a loss's ``N / B`` the padded batch gives the same loss as its
    real rows alone (each weighing ``N / n_real``). A training run passes
    ``weight = BatchSchedule.row_weight = S * B / N`` instead, for every batch of a padded
    schedule: each real row then weighs ``S`` and one epoch's mean loss is the full-data loss
    (see the module docstring).

    The handler multiplies whatever scale the site already has, so it composes with a loss (or a
    subsampling plate) that set ``N / B``, provided it runs after them: wrap the call to the
    loss (``with padded_rows(...): svi.update(...)``), not the model the loss scales, since a
    minibatch loss leaves sites whose scale is already set alone.

    A site counts as having rows when the leading dimension of its batch shape is ``B``; other
    observed sites (e.g. a summed ``numpyro.factor``) cannot be masked row by row, so a padded
    batch raises for them instead of silently counting padding.

    Args:
        row_mask: ``(B,)`` bool, ``True`` for real rows.
        weight: the factor on every real row's log density (a Python float, or a scalar array);
            ``None`` for ``B / n_real``.
    """

    def __init__(
        self, fn: Any = None, *, row_mask: Array, weight: float | Array | None = None
    ) -> None:
        self.row_mask = row_mask
        self.batch_size = int(row_mask.shape[0])
        self.weight = weight
        super().__init__(fn)

    def process_message(self, msg: Any) -> None:
        if msg["type"] != "sample" or not msg["is_observed"]:
            return
        batch_shape = tuple(msg["fn"].batch_shape)
        if not batch_shape or batch_shape[0] != self.batch_size:
            raise ValueError(
                f"observed site {msg['name']!r} has batch shape {batch_shape}, which has no "
                f"leading row dimension of size {self.batch_size}, so the padded rows of the "
                "last minibatch cannot be masked out of it. Give the site one value per row, "
                "or choose a batch_size that divides the number of rows."
            )
        mask = self.row_mask.reshape((self.batch_size,) + (1,) * (len(batch_shape) - 1))
        msg["fn"] = msg["fn"].mask(mask)
        weight = self.weight
        if weight is None:
            weight = self.batch_size / jnp.sum(self.row_mask)
        multiply_scale(msg, weight)
