"""Results: what can be computed from posterior draws.

Chunked posterior predictions, the summary table, prior predictive draws. It imports the engine
and the contract, never the io or api layers.
"""
