"""fit's options: validated before the model is traced, naming the argument; an option of the
other method raises; the signature's defaults are the options' own."""

from __future__ import annotations

import inspect
import re

import attrs
import numpy as np
import pytest

from blayers_core import ComponentNotFoundError, fit, method
from blayers_core.api.options import FitOptions
from blayers_core.contract.methods import option_names
from blayers_core.contract.registry import get_registry
from blayers_plugins.methods import NUTS, SVI

X = np.random.default_rng(0).normal(size=(20, 2)).astype(np.float32)
Y = X.sum(axis=1)


def untraceable(x, y=None):
    raise AssertionError("the model ran, but the options should have been refused first")


def refuse(**options):
    fit(untraceable, x=X, y=Y, **{"progress_bar": False, **options})


@pytest.mark.parametrize(
    ("chosen", "option", "value", "owner"),
    [
        ("nuts", "batch_size", 64, "svi"),
        ("nuts", "loss", "trace_elbo", "svi"),
        ("nuts", "guide", "auto_normal", "svi"),
        ("nuts", "num_epochs", 3, "svi"),
        ("nuts", "chunk_size", 10, "svi"),
        ("nuts", "shuffle", False, "svi"),
        ("nuts", "checkpoint_dir", "ckpt", "svi"),
        ("nuts", "checkpoint_every", 10, "svi"),
        ("nuts", "resume", True, "svi"),
        ("svi", "num_warmup", 100, "hmc' and method 'nuts"),
        ("svi", "num_chains", 2, "hmc' and method 'nuts"),
        ("svgd", "num_chains", 2, "hmc' and method 'nuts"),
    ],
)
def test_an_option_the_method_does_not_take_raises(chosen, option, value, owner) -> None:
    message = (
        f"method '{chosen}' does not take {option}={value!r}; it is an option of method '{owner}'"
    )
    with pytest.raises(ValueError, match="^" + re.escape(message) + r"\. The options of"):
        refuse(method=chosen, **{option: value})


def test_an_option_passed_at_its_default_value_is_still_refused() -> None:
    """Passed is passed: the default's value given explicitly is not silently dropped."""
    with pytest.raises(ValueError, match="method 'nuts' does not take batch_size=None"):
        refuse(method="nuts", batch_size=None)
    with pytest.raises(ValueError, match="method 'svi' does not take num_chains=1"):
        refuse(num_chains=1)


def test_every_unknown_option_is_named_with_the_method_s_own() -> None:
    with pytest.raises(ValueError) as info:
        refuse(method="nuts", batch_size=64, lr=0.1)
    message = str(info.value)
    assert "does not take batch_size=64" in message and "does not take lr=0.1" in message
    assert "The options of 'nuts' are: num_warmup, num_chains, target_accept_prob" in message


def test_a_method_option_given_as_data_is_named_as_such() -> None:
    """fit(..., method="nuts", target_accept_prob=0.95) used to reach the model as data."""
    with pytest.raises(
        ValueError,
        match=r"target_accept_prob=0.95 is not an argument of the model; it is an option of method 'nuts'",
    ) as info:
        refuse(method="nuts", target_accept_prob=0.95)
    assert "method=blayers_core.method('nuts', target_accept_prob=0.95)" in str(info.value)


def test_a_keyword_the_model_does_not_take_is_named() -> None:
    with pytest.raises(
        ValueError,
        match=r"z= is not an argument of the model 'untraceable' \(its arguments: x, y\)",
    ):
        refuse(z=X)


@pytest.mark.parametrize(
    ("options", "error", "pattern"),
    [
        ({"method": "mcmc"}, ComponentNotFoundError, r"no method named 'mcmc'"),
        ({"method": 3}, TypeError, r"method must be a registered name such as 'svi'"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be a positive int, got 0"),
        ({"batch_size": 2.5}, ValueError, "batch_size must be a positive int or None, got 2.5"),
        ({"num_epochs": -1}, ValueError, "num_epochs must be a positive int or None, got -1"),
        ({"num_samples": True}, ValueError, "num_samples must be a positive int or None, got True"),
        ({"num_obs": 0}, ValueError, "num_obs must be a positive int or None, got 0"),
        ({"seed": 1.5}, TypeError, "seed must be an int, got 1.5"),
        ({"shuffle": "yes"}, TypeError, "shuffle must be True or False, got 'yes'"),
        ({"progress_bar": None}, TypeError, "progress_bar must be True or False, got None"),
        ({"lr": -0.1}, ValueError, "lr must be a positive number"),
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
        (
            {"method": method("nuts", target_accept_prob=0.9), "num_chains": True},
            ValueError,
            "num_chains must be a positive int, got True",
        ),
        (
            {"method": method("nuts", num_warmup=10), "num_warmup": 20},
            ValueError,
            r"num_warmup given both to fit and in method\('nuts', ...\) with different values",
        ),
        ({"method": "hmc", "trajectory_length": 0.0}, ValueError, "not an argument of the model"),
    ],
)
def test_a_bad_option_is_named_before_the_model_runs(options, error, pattern) -> None:
    with pytest.raises(error, match=pattern):
        refuse(**options)


def test_the_method_options_of_fit_default_to_the_method_s_own() -> None:
    """help(fit) reads ``batch_size=<method's default>``: fit hands a method only what was given,
    so the method's defaults apply; every such option is an option of a first-party method."""
    parameters = inspect.signature(fit).parameters
    common = set(attrs.fields_dict(FitOptions))
    data = {"model", "data", "columns", "method", "data_kwargs"}
    method_options = set(parameters) - common - data
    first_party = {
        name: set(option_names(c.factory) or ())
        for name in ("svi", "nuts", "hmc", "svgd")
        for c in [get_registry().get("method", name)]
    }
    assert method_options <= set().union(*first_party.values())
    for name in method_options:
        assert repr(parameters[name].default) == "<method's default>", name


def test_a_configured_method_is_merged_with_fit_s_options() -> None:
    configured = method("nuts", target_accept_prob=0.9)
    merged = configured.with_options({"num_warmup": 10})
    assert merged.config == {"target_accept_prob": 0.9, "num_warmup": 10}
    assert merged.method == NUTS(target_accept_prob=0.9, num_warmup=10)
    assert method("vi").method == SVI()  # the older name


def test_numpy_integers_are_accepted_as_plain_ints() -> None:
    """So that the options can be written to JSON (checkpoints, saved results)."""
    svi = SVI(batch_size=np.int64(8), num_steps=np.int32(5))
    assert type(svi.batch_size) is int and type(svi.num_steps) is int
    with pytest.raises(ValueError, match="num_chains must be a positive int, got True"):
        NUTS(num_chains=True)
    with pytest.raises(ValueError, match=r"target_accept_prob must be a probability in \(0, 1\)"):
        NUTS(target_accept_prob=1.0)
