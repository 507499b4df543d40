"""The contract: what every component and plugin agrees on.

Protocols of the component kinds, the pluggy hooks and the entry-point registry, the errors, the
shape and value checks layers and links share, population codes, and the versions. This layer
imports nothing else of ``blayers_core``; every other layer may import it.
"""
