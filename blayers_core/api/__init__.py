"""The user API: ``fit``, the :class:`~blayers_core.api.result.FitResult` it returns, ``load``.

``fit`` validates its options (``options``), then runs the chosen method's back end
(``backends``: VI and NUTS, behind one interface), resolving components by name (``components``).
It joins the layers below: components resolved by name, the engine, results and io.
"""
