"""fit's options: validated before the model is traced, naming the argument; an option of the
other method raises; the signature's defaults are the options' own."""

from __future__ import annotations

import inspect

import attrs
import numpy as np
import pytest

from blayers_core import fit
from blayers_core.api.backends import BACKENDS, backend_for
from blayers_core.api.backends.base import option_names
from blayers_core.api.options import FitOptions, NUTSOptions, VIOptions

X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
Y = X.sum(axis=1)


def untraceable(x, y=None):
    raise AssertionError("the model ran, but the options should have been refused first")


def refuse(**options):
    fit(untraceable, x=X, y=Y, **{"progress_bar": False, **options})


@pytest.mark.parametrize(
    ("method", "option", "value", "owner"),
    [
        ("nuts", "batch_size", 64, "vi"),
        ("nuts", "loss", "trace_elbo", "vi"),
        ("nuts", "guide", "auto_normal", "vi"),
        ("nuts", "optimizer", "adam", "vi"),
        ("nuts", "lr", 0.1, "vi"),
        ("nuts", "num_steps", 100, "vi"),
        ("nuts", "num_epochs", 3, "vi"),
        ("nuts", "chunk_size", 10, "vi"),
        ("nuts", "shuffle", False, "vi"),
        ("nuts", "checkpoint_dir", "ckpt", "vi"),
        ("nuts", "checkpoint_every", 10, "vi"),
        ("nuts", "resume", True, "vi"),
        ("vi", "num_warmup", 100, "nuts"),
        ("vi", "num_chains", 2, "nuts"),
    ],
)
def test_an_option_the_method_does_not_use_raises(method, option, value, owner) -> None:
    message = f"{option} is an option of method='{owner}'; method='{method}' does not use it"
    with pytest.raises(ValueError, match=f"^{message}$"):
        refuse(method=method, **{option: value})


def test_an_option_passed_at_its_default_value_is_still_refused() -> None:
    """Passed is passed: the default's value given explicitly is not silently dropped."""
    with pytest.raises(ValueError, match="batch_size is an option of method='vi'"):
        refuse(method="nuts", batch_size=None)
    with pytest.raises(ValueError, match="num_chains is an option of method='nuts'"):
        refuse(num_chains=1)


def test_every_unused_option_is_named() -> None:
    with pytest.raises(ValueError) as info:
        refuse(method="nuts", batch_size=64, lr=0.1)
    assert "batch_size is an option of method='vi'" in str(info.value)
    assert "lr is an option of method='vi'" in str(info.value)


@pytest.mark.parametrize(
    ("options", "error", "pattern"),
    [
        ({"method": "mcmc"}, ValueError, r"method must be 'vi' or 'nuts', got 'mcmc'"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int, got 0"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be a positive int or None, got 2.5"),
        ({"num_epochs": -1}, ValueError, "num_epochs must be a positive int, got -1"),
        ({"num_samples": True}, ValueError, "num_samples must be a positive int, got True"),
        ({"num_obs": 0}, ValueError, "num_obs must be a positive int or None, got 0"),
        ({"seed": 1.5}, TypeError, "seed must be an int, got 1.5"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False, got 'yes'"),
        ({"progress_bar": None}, TypeError, "progress_bar must be True or False, got None"),
        ({"lr": -0.1}, ValueError, "lr must be a positive number or an optax schedule"),
        ({"guide": 3}, TypeError, "guide must be a registered name"),
        ({"optimizer": "adam", "lr": "fast"}, ValueError, "lr must be a positive number"),
        ({"checkpoint_dir": 3}, TypeError, "checkpoint_dir must be a folder path or None"),
        ({"resume": True}, ValueError, r"resume=True needs checkpoint_dir="),
        ({"checkpoint_every": 10}, ValueError, r"checkpoint_every= needs checkpoint_dir="),
        (
            {"method": "nuts", "num_warmup": -1},
            ValueError,
            "num_warmup must be a non-negative int, got -1",
        ),
        ({"method": "nuts", "num_chains": 0}, ValueError, "num_chains must be a positive int"),
    ],
)
def test_a_bad_option_is_named_before_the_model_runs(options, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        refuse(**options)


def test_the_signature_shows_the_options_own_defaults() -> None:
    """help(fit) reads ``batch_size=None``, ``loss='batched_elbo'``, ...: the defaults of the
    options classes, however fit tells them from a passed value."""
    parameters = inspect.signature(fit).parameters
    for options_type in (VIOptions, NUTSOptions):
        for field in attrs.fields(options_type):
            if field.name in parameters:  # target_accept_prob is not (yet) one of fit's
                assert repr(parameters[field.name].default) == repr(field.default), field.name
    common = attrs.fields_dict(FitOptions)
    for name in ("seed", "num_samples", "progress_bar", "num_obs"):
        assert parameters[name].default == common[name].default


def test_every_method_option_of_fit_belongs_to_a_back_end() -> None:
    parameters = set(inspect.signature(fit).parameters)
    by_method = {name: set(option_names(backend)) for name, backend in BACKENDS.items()}
    common = set(attrs.fields_dict(FitOptions)) - {"method"}
    data = {"model", "data", "columns", "method", "data_kwargs"}
    assert parameters - common - data == (by_method["vi"] | by_method["nuts"]) - {
        "target_accept_prob"
    }
    assert not by_method["vi"] & by_method["nuts"]
    for name, backend in BACKENDS.items():
        assert backend.name == name and backend_for(name) is backend


def test_numpy_integers_are_accepted_as_plain_ints() -> None:
    """So that the options can be written to JSON (checkpoints, saved results)."""
    vi = VIOptions(batch_size=np.int64(8), num_steps=np.int32(5))
    assert type(vi.batch_size) is int and type(vi.num_steps) is int
    assert vi.total_steps(steps_per_epoch=3) == 5
    assert VIOptions(num_epochs=2).total_steps(steps_per_epoch=3) == 6
    assert VIOptions().total_steps(steps_per_epoch=3) == 2000
    with pytest.raises(ValueError, match="num_chains must be a positive int, got True"):
        NUTSOptions(num_chains=True)
    with pytest.raises(ValueError, match=r"target_accept_prob must be a probability in \(0, 1\)"):
        NUTSOptions(target_accept_prob=1.0)
