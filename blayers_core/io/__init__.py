"""Input and output: DataFrames in; files, ArviZ objects and plots out.

It imports the results, the engine and the contract; the api layer (``fit``, ``FitResult``)
imports it.
"""
