"""The FastAPI application, its routers and the `oo` command line."""
