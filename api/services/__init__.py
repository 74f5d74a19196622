"""The service layer: what routes and the `oo` command line both call.

Routes stay thin (read the request, call a service, shape the answer); commands do the same
for a terminal. A service never imports a route, and no route imports another route.

- `process`: everything one process holds while it runs (`Services`, built once by `start`).
"""
