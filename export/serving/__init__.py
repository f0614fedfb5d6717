"""The pieces of ``export.serve``: directory layout, model repository, REST/JSON codec and the
REST and gRPC front-ends. ``export.serve`` puts them together (``ModelServer``) and is the CLI.

- ``layout``:     BASE/NAME/VERSION discovery and ``models.config`` (standard library only)
- ``repository``: loading/unloading versions, polling, signatures with input validation
- ``codec``:      TF Serving's REST JSON formats <-> numpy arrays
- ``apis``:       model status / metadata responses shared by both front-ends
- ``rest``, ``grpc_api``: the two front-ends
"""
