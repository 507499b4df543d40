"""``FitResult.save(path)`` and ``load(path)``: a fit as one ``.npz`` file, without pickle.

The file is a NumPy ``.npz`` archive (a zip of ``.npy`` arrays, each with a CRC) read with
``allow_pickle=False``. It holds:

* the posterior draws, the variational parameters (VI) and the loss history, as arrays;
* array constants given to ``fit``, as arrays; other constants (numbers, strings, ``None`` and
  tuples of them) in the metadata;
* ``meta.json``: the format version, the blayers version, the method, how the loss, guide and
  optimizer (or sampler) were given (registered name and config, or the type of an object), the
  observed sites, the number of rows and chains, the data encoder when the result has one, the
  trailing shapes and dtype kinds of the training rows (which ``predict`` checks; a file without
  them is read, and its predictions are not checked), and the model's import reference
  ``module:qualname`` when it has one;
* the latent sites the draws are of, with their shapes (``latent_sites``).

The file is written atomically (:func:`~blayers_core.engine.atomic.write_atomically`): a crash
while saving leaves the previous file, never half of a new one; a temporary file that a writer
killed mid-save left next to it is removed by the next save.

``load`` checks the model against the file: it traces the model abstractly on the recorded layout
of the training rows and compares its latent sites with ``latent_sites``. A site missing on either
side or of another shape raises :class:`~blayers_core.contract.errors.ModelMismatchError`, since
prediction would otherwise draw a missing site from the prior; ``allow_missing_sites=True`` lets
the model's sites that the file lacks be drawn from the prior. A file without that record (older,
or from a result not made by ``fit``) is read with a warning that the model cannot be checked.

No code is stored. ``load`` imports the model from its reference (or takes ``model=``) and looks
every named component up in the plugin registry, so a missing plugin is reported by name.
"""

from __future__ import annotations

import importlib
import json
import os
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import jax
import jax.numpy as jnp
import numpy as np

from blayers_core.contract._typing import ModelFn
from blayers_core.contract.errors import ComponentNotFoundError, ModelMismatchError, ResultFileError
from blayers_core.contract.registry import get_registry
from blayers_core.engine.atomic import remove_stale_temporaries, write_atomically
from blayers_core.engine.checkpoint import Entry, TracedSites, site_difference, trace_sites
from blayers_core.engine.data import DataSignature, is_array
from blayers_core.io.frames import DataEncoder

if TYPE_CHECKING:
    from blayers_core.api.result import FitResult

FORMAT = "blayers.fit_result"
FORMAT_VERSION = 1
META_KEY = "meta_json"
_SCALARS = (type(None), bool, int, float, str)


def model_reference(model: ModelFn) -> str | None:
    """``module:qualname`` of a model importable by that name, else ``None`` (``__main__``,
    lambdas, functions defined inside functions)."""
    module, qualname = getattr(model, "__module__", None), getattr(model, "__qualname__", None)
    if not module or not qualname or module == "__main__" or "<" in qualname:
        return None
    try:
        return f"{module}:{qualname}" if import_reference(f"{module}:{qualname}") is model else None
    except (ImportError, AttributeError):
        return None


def import_reference(reference: str) -> Any:
    """The object named by ``module:qualname``."""
    module, _, qualname = reference.partition(":")
    obj: Any = importlib.import_module(module)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _json_constant(name: str, value: Any) -> Any:
    if isinstance(value, _SCALARS) or isinstance(value, np.integer | np.floating | np.bool_):
        return value.item() if isinstance(value, np.generic) else value
    if isinstance(value, tuple | list) and all(isinstance(v, _SCALARS) for v in value):
        return {"tuple" if isinstance(value, tuple) else "list": list(value)}
    raise TypeError(
        f"constant {name!r} ({type(value).__name__}) cannot be saved without pickle: constants "
        "must be arrays, numbers, strings, None, or tuples/lists of those"
    )


def _from_json_constant(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(value["tuple"]) if "tuple" in value else list(value["list"])
    return value


def _to_array(label: str, value: Any) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype == object:
        raise TypeError(f"{label} is not a numeric array and cannot be saved without pickle")
    return arr


def save(result: FitResult, path: str | os.PathLike[str]) -> Path:
    """Write ``result`` to ``path`` (``.npz`` is appended when missing); returns the path."""
    from blayers_core.contract.version import __version__

    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
    arrays: dict[str, np.ndarray] = {"losses": np.asarray(result.losses)}
    index: dict[str, dict[str, str]] = {"posterior": {}, "params": {}, "constants": {}}
    for group, values in (("posterior", result.posterior_samples), ("params", result.params)):
        for i, (name, value) in enumerate(sorted(values.items())):
            key = f"{group}_{i}"
            arrays[key] = _to_array(f"{group} entry {name!r}", value)
            index[group][name] = key
    constant_values: dict[str, Any] = {}
    for i, (name, value) in enumerate(sorted(result.constants.items())):
        if is_array(value):
            key = f"constant_{i}"
            arrays[key] = _to_array(f"constant {name!r}", value)
            index["constants"][name] = key
        else:
            constant_values[name] = _json_constant(name, value)
    encoder = getattr(result, "encoder", None)
    meta = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "blayers_version": __version__,
        "method": result.method,
        "components": result.components,
        "observed_sites": list(result.observed_sites),
        "num_rows": int(result.num_rows),
        "num_chains": int(result.num_chains),
        "markov_chains": bool(result.markov_chains),
        "steps_done": int(result.steps_done),
        "interrupted": bool(result.interrupted),
        "model": model_reference(result.model),
        "arrays": index,
        "constant_values": constant_values,
        "encoder": None if encoder is None else encoder.to_json_dict(),
        "data_signature": _signature_to_json(getattr(result, "data_signature", None)),
        "latent_sites": _latent_sites_to_json(result.posterior_samples),
    }
    text = json.dumps(meta, indent=1, sort_keys=True)
    arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path.parent, lambda target: target == path.name)

    def write(handle: BinaryIO) -> None:
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]

    return write_atomically(path, write)


def _read(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    if not path.exists():
        raise FileNotFoundError(f"no saved result at {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (zipfile.BadZipFile, zlib.error, OSError, ValueError, EOFError) as error:
        raise ResultFileError(
            f"{path} is not a readable blayers result (corrupt or not written by "
            f"FitResult.save): {error}"
        ) from error
    if META_KEY not in arrays:
        raise ResultFileError(
            f"{path} has no blayers metadata: it was not written by FitResult.save"
        )
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ResultFileError(f"{path}: the metadata is corrupt ({error})") from error
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ResultFileError(f"{path} was not written by FitResult.save")
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        raise ResultFileError(
            f"{path} has format version {version!r} (written by blayers "
            f"{meta.get('blayers_version')}); this blayers reads format version {FORMAT_VERSION}. "
            "Load it with the blayers version that wrote it"
        )
    return meta, arrays


def _check_components(path: Path, components: dict[str, Any], model: ModelFn) -> Any:
    """Look every named component up in the registry; rebuild a named guide."""
    registry = get_registry()
    guide = None
    for kind in ("method", "loss", "guide", "optimizer"):
        name = (components.get(kind) or {}).get("name")
        if name is None:
            continue
        try:
            registry.get(kind, name)
        except ComponentNotFoundError as error:
            raise ComponentNotFoundError(
                f"{path} was fitted with {kind} {name!r}, which no installed plugin provides: "
                f"install the plugin that registers it. {error}"
            ) from error
        if kind == "guide":
            guide = registry.build("guide", name, model, **components[kind].get("config", {}))
    return guide


def _model(path: Path, meta: dict[str, Any], model: ModelFn | None) -> ModelFn:
    if model is not None:
        if not callable(model):
            raise TypeError(f"model must be the model function, got {type(model).__name__}")
        return model
    reference = meta.get("model")
    if reference is None:
        raise ValueError(
            f"{path}: the model was not importable by name when saved (defined in __main__, "
            "inside a function, or a lambda); pass it: load(path, model=model)"
        )
    try:
        return import_reference(reference)  # type: ignore[no-any-return]
    except (ImportError, AttributeError) as error:
        raise ImportError(
            f"{path}: cannot import the model {reference!r} ({error}); make it importable or "
            "pass it: load(path, model=model)"
        ) from error


def _encoder(path: Path, data: Any) -> DataEncoder:
    try:
        return DataEncoder.from_json_dict(data)
    except ValueError as error:
        raise ResultFileError(f"{path}: its data encoder cannot be read: {error}") from error


def _latent_sites_to_json(posterior: dict[str, Any]) -> list[list[Any]]:
    """``[[site, shape], ...]`` of the posterior draws (the shape without the draws' axis)."""
    return [[name, list(np.shape(value)[1:])] for name, value in sorted(posterior.items())]


#: The dtype of the zero rows a saved model is traced on, by the recorded NumPy kind.
_KIND_DTYPES = {"f": np.float32, "i": np.int32, "u": np.uint32, "b": np.bool_}
_KIND_NAMES = {"f": "float", "i": "integer", "u": "integer", "b": "boolean"}


def _trace_saved_layout(
    path: Path,
    model: ModelFn,
    signature: DataSignature,
    constants: dict[str, Any],
    num_rows: int,
) -> TracedSites:
    """The model's sites, traced abstractly on rows of the recorded layout and the constants."""
    rows = {
        name: jax.ShapeDtypeStruct(  # type: ignore[no-untyped-call]
            (num_rows, *shape), _KIND_DTYPES.get(kind, np.float32)
        )
        for name, (shape, kind) in signature.items()
    }
    arrays = {**rows, **{k: v for k, v in constants.items() if is_array(v)}}
    static = {k: v for k, v in constants.items() if not is_array(v)}
    try:
        return trace_sites(model, arrays, static)
    except Exception as error:
        layout = ", ".join(
            f"{k} {(num_rows, *s)} {_KIND_NAMES.get(v, v)}" for k, (s, v) in signature.items()
        )
        raise ModelMismatchError(
            f"{path}: this model does not run on the data it was fitted on ({layout}): "
            f"{type(error).__name__}: {error}. Pass the model that was fitted: "
            "load(path, model=model)"
        ) from error


def check_model_sites(
    path: Path,
    meta: dict[str, Any],
    model: ModelFn,
    constants: dict[str, Any],
    signature: DataSignature | None,
    allow_missing_sites: bool = False,
) -> None:
    """Raise :class:`ModelMismatchError` when ``model``'s latent sites are not those the file
    records (see the module doc); warn when the file cannot tell."""
    recorded = meta.get("latent_sites")
    if recorded is None or signature is None:
        why = (
            "was written by an older blayers and does not record its latent sites"
            if recorded is None
            else "does not record the layout of its training rows (the result was not made by fit)"
        )
        warnings.warn(
            f"{path} {why}: the model cannot be checked against it; a site the model has and the "
            "file lacks would be drawn from the prior at prediction",
            UserWarning,
            stacklevel=4,
        )
        return
    traced = _trace_saved_layout(path, model, signature, constants, int(meta["num_rows"]))
    saved: list[Entry] = [(str(name), tuple(shape), "") for name, shape in recorded]
    problem = _site_problem(path, saved, traced, allow_missing_sites)
    if problem is None:
        problem = _observed_problem(path, meta, traced)
    if problem is not None:
        raise ModelMismatchError(f"{path} was fitted with another model: {problem}")


def _site_problem(
    path: Path, saved: list[Entry], traced: TracedSites, allow_missing: bool
) -> str | None:
    """The first difference between the saved latent sites and the model's, or ``None``."""
    names = {entry[0] for entry in saved}
    # Draws may hold deterministic sites too (NUTS records them): compare those the file has.
    now = [(n, s, "") for n, s, _ in traced.latent] + [
        (n, s, "") for n, s, _ in traced.deterministic if n in names
    ]
    present = [entry for entry in now if entry[0] in names]
    problem = site_difference(saved, present, ordered=False, saved_as=path.name)
    if problem is not None:
        return f"{problem}; pass the model that was fitted"
    missing = [entry[0] for entry in now if entry[0] not in names]
    if missing and not allow_missing:
        return (
            f"this model has sites {missing} that {path.name} has no draws of: predictions would "
            "draw them from the prior. Pass the model that was fitted, or load(path, model=model, "
            "allow_missing_sites=True) to draw such sites from the prior"
        )
    if missing:
        warnings.warn(
            f"{path} has no draws of the model's sites {missing}: allow_missing_sites=True, so "
            "predictions draw them from the prior",
            UserWarning,
            stacklevel=5,
        )
    return None


def _observed_problem(path: Path, meta: dict[str, Any], traced: TracedSites) -> str | None:
    """An observed site of the file that the model does not observe, or ``None``."""
    for name in meta.get("observed_sites", []):
        if name not in traced.observed:
            return (
                f"{path.name} has observed site {name!r}, which this model does not observe "
                f"(it observes {traced.observed}); pass the model that was fitted"
            )
    return None


def read_result(
    path: str | os.PathLike[str],
    model: ModelFn | None = None,
    *,
    allow_missing_sites: bool = False,
) -> dict[str, Any]:
    """The fields of a :class:`~blayers_core.FitResult` written by :meth:`FitResult.save`, as
    keyword arguments of its constructor; :func:`blayers_core.load` (arguments and errors
    documented there) builds the result from them."""
    path = Path(path)
    meta, arrays = _read(path)
    index = meta["arrays"]
    try:
        posterior = {name: jnp.asarray(arrays[key]) for name, key in index["posterior"].items()}
        params = {name: arrays[key] for name, key in index["params"].items()}
        constants = {name: arrays[key] for name, key in index["constants"].items()}
        losses = arrays["losses"]
    except KeyError as error:
        raise ResultFileError(f"{path} is incomplete: array {error} is missing") from error
    constants.update({k: _from_json_constant(v) for k, v in meta["constant_values"].items()})
    fn = _model(path, meta, model)
    components = meta.get("components") or {}
    guide = _check_components(path, components, fn)
    signature = _signature_from_json(path, meta.get("data_signature"))
    check_model_sites(path, meta, fn, constants, signature, allow_missing_sites)
    encoder = None if meta.get("encoder") is None else _encoder(path, meta["encoder"])
    return dict(
        model=fn,
        guide=guide,
        params=params,
        losses=losses,
        posterior_samples=posterior,
        observed_sites=tuple(meta["observed_sites"]),
        constants=constants,
        num_rows=int(meta["num_rows"]),
        steps_done=int(meta["steps_done"]),
        interrupted=bool(meta["interrupted"]),
        method=str(meta["method"]),
        num_chains=int(meta["num_chains"]),
        # Files from before methods were components: only NUTS drew Markov chains.
        markov_chains=bool(meta.get("markov_chains", meta["method"] == "nuts")),
        components=components,
        encoder=encoder,
        data_signature=signature,
    )


def _signature_to_json(signature: DataSignature | None) -> dict[str, Any] | None:
    """The training rows' signature in ``meta.json``: ``{argument: {"shape": [...], "kind": k}}``."""
    if signature is None:
        return None
    return {name: {"shape": list(shape), "kind": kind} for name, (shape, kind) in signature.items()}


def _signature_from_json(path: Path, data: Any) -> DataSignature | None:
    """The signature written by :func:`_signature_to_json`; ``None`` (not checked) for a file
    written before it was saved."""
    if data is None:
        return None
    try:
        return {
            str(name): (tuple(int(d) for d in entry["shape"]), str(entry["kind"]))
            for name, entry in data.items()
        }
    except (AttributeError, KeyError, TypeError, ValueError) as error:
        raise ResultFileError(f"{path}: its data signature cannot be read: {error!r}") from error
