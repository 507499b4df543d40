"""``FitResult.save`` / ``load``: a loaded result predicts exactly as the saved one; bad files,
missing plugins and unimportable models give clear errors."""

from __future__ import annotations

import json

import attrs
import numpy as np
import pytest
from helpers import features, hand_result

from blayers_core import (
    ComponentNotFoundError,
    FitResult,
    ResultFileError,
    fit,
    layer,
    link,
    load,
)
from blayers_core.io.persistence import META_KEY

linear, gaussian = layer("adaptive"), link("gaussian")


def shifted_model(x, y=None, shift=0.0, weights=None):
    """An importable model with a scalar and an array constant."""
    mu = linear("mu", x) + shift + (0.0 if weights is None else weights.sum())
    return gaussian(mu, y)


def data(n=80):
    x = features(n=n, seed=4)
    y = x @ np.array([0.8, -0.4, 0.2]) + 1.0 + 0.3 * np.random.default_rng(6).normal(size=n)
    return x, y.astype(np.float32)


def same_predictions(a: FitResult, b: FitResult, x) -> None:
    for kind in ("mean", "response"):
        pa = a.predict(x=x, kind=kind, return_draws=True, seed=7, chunk_rows=16)
        pb = b.predict(x=x, kind=kind, return_draws=True, seed=7, chunk_rows=16)
        for attr in ("mean", "sd", "quantiles", "draws"):
            np.testing.assert_array_equal(getattr(pa, attr), getattr(pb, attr), err_msg=attr)


def rewrite_meta(path, change):
    with np.load(path) as archive:
        arrays = {k: archive[k] for k in archive.files}
    meta = json.loads(arrays[META_KEY].tobytes())
    change(meta)
    arrays[META_KEY] = np.frombuffer(json.dumps(meta).encode(), dtype=np.uint8)
    np.savez(path, **arrays)


@pytest.fixture(scope="module")
def vi_fit():
    x, y = data()
    return fit(
        shifted_model,
        x=x,
        y=y,
        shift=1.0,
        weights=np.zeros(2, dtype=np.float32),
        guide="auto_normal",
        lr=0.05,
        num_steps=300,
        num_samples=50,
        progress_bar=False,
    )


def test_a_loaded_vi_fit_predicts_identically(vi_fit, tmp_path):
    path = vi_fit.save(tmp_path / "fit")
    assert path.name == "fit.npz"
    loaded = load(path)  # the model is imported from its saved reference
    assert loaded.model is shifted_model
    assert loaded.constants["shift"] == 1.0
    np.testing.assert_array_equal(loaded.constants["weights"], np.zeros(2))
    np.testing.assert_array_equal(loaded.losses, vi_fit.losses)
    assert loaded.components == {
        "method": {
            "name": "svi",
            "config": {"guide": "auto_normal", "lr": 0.05, "num_steps": 300},
        },
        "loss": {"name": "batched_elbo", "config": {}},
        "guide": {"name": "auto_normal", "config": {}},
        "optimizer": {"name": "adam", "config": {"learning_rate": 0.05}},
    }
    assert type(loaded.guide) is type(vi_fit.guide)  # rebuilt by name through the registry
    assert loaded.params.keys() == vi_fit.params.keys()
    same_predictions(vi_fit, loaded, data(n=37)[0])
    assert loaded.summary().equals(vi_fit.summary())


def test_a_model_that_cannot_be_imported_is_passed_to_load(tmp_path):
    result = hand_result("gaussian")  # its model is defined inside a function
    path = result.save(tmp_path / "local.npz")
    with pytest.raises(ValueError, match=r"pass it: load\(path, model=model\)"):
        load(path)
    same_predictions(result, load(path, model=result.model), features(n=20))


def test_a_missing_plugin_is_named(vi_fit, tmp_path):
    path = vi_fit.save(tmp_path / "fit.npz")
    rewrite_meta(path, lambda m: m["components"]["guide"].update(name="acme:auto_flow"))
    with pytest.raises(
        ComponentNotFoundError, match=r"fitted with guide 'acme:auto_flow'.*install"
    ):
        load(path)


def test_another_format_version_or_a_corrupt_file_is_refused(vi_fit, tmp_path):
    path = vi_fit.save(tmp_path / "fit.npz")
    rewrite_meta(path, lambda m: m.update(format_version=99))
    with pytest.raises(ResultFileError, match=r"format version 99.*reads format version 1"):
        load(path)
    path = vi_fit.save(tmp_path / "fit.npz")
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)  # damage the middle of the archive
    path.write_bytes(bytes(raw))
    with pytest.raises(ResultFileError, match="corrupt"):
        load(path)
    (tmp_path / "other.npz").write_bytes(b"not a zip file")
    with pytest.raises(ResultFileError, match="not a readable blayers result"):
        load(tmp_path / "other.npz")
    np.savez(tmp_path / "plain.npz", a=np.zeros(3))
    with pytest.raises(ResultFileError, match="no blayers metadata"):
        load(tmp_path / "plain.npz")


def test_a_constant_that_needs_pickle_is_refused_on_save(tmp_path):
    result = attrs.evolve(hand_result("gaussian"), constants={"table": {"a": 1}})
    with pytest.raises(TypeError, match=r"constant 'table' .* cannot be saved without pickle"):
        result.save(tmp_path / "x.npz")


def test_a_data_encoder_is_saved_through_its_json_form_and_loaded_back(tmp_path):
    import pandas as pd

    from blayers_core import DataEncoder

    frame = pd.DataFrame(
        {"x1": [0.5, 1.0, -1.0], "x2": [1.0, 2.0, 3.0], "g": pd.Categorical(["b", "a", "b"])}
    )
    encoder = DataEncoder.from_frame(frame, {"x": ["x1", "x2"], "g": "g"})
    result = attrs.evolve(hand_result("gaussian"), encoder=encoder)
    path = result.save(tmp_path / "encoded.npz")
    with np.load(path) as archive:
        meta = json.loads(archive[META_KEY].tobytes())
    assert meta["encoder"] == json.loads(json.dumps(encoder.to_json_dict()))
    loaded = load(path, model=result.model)
    assert loaded.encoder == encoder
    assert loaded.levels == {"g": ("a", "b")}


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::blayers_core.SamplingWarning")  # few draws on purpose
def test_a_loaded_nuts_fit_predicts_identically(tmp_path):
    x, y = data(n=50)
    result = fit(
        shifted_model,
        x=x,
        y=y,
        method="nuts",
        num_warmup=150,
        num_samples=100,
        num_chains=2,
        progress_bar=False,
    )
    loaded = load(result.save(tmp_path / "nuts.npz"))
    assert loaded.method == "nuts" and loaded.num_chains == 2 and loaded.guide is None
    assert loaded.components["method"]["name"] == "nuts" and loaded.markov_chains
    same_predictions(result, loaded, x[:30])
    np.testing.assert_array_equal(loaded.summary()["r_hat"], result.summary()["r_hat"])
