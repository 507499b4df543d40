"""The user API: ``fit``, the :class:`~blayers_core.api.result.FitResult` it returns, ``load``.

It joins the layers below: components resolved by name, the engine, results and io.
"""
