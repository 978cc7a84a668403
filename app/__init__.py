"""The application layer: one module per use case, called alike by the CLI, the HTTP routes and the agents.

``AppContext`` (:mod:`app.context`) holds what a process builds once: the catalog, the model cache and
the vector-store registries. Each use case module (:mod:`app.search`, :mod:`app.indexing`,
:mod:`app.evaluation`, :mod:`app.training`, :mod:`app.data`, :mod:`app.status`) is a set of functions
``f(ctx, ...)`` that return plain records; the adapters above (``service/`` commands and routes, the
agents' tools) only parse arguments and format results. Layering: ``app`` imports ``tools`` only.
"""
