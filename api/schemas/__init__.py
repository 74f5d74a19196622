"""Wire schemas: the one definition of every request and response body, a module a domain.

`base` holds what they share (`Instant`, `NoNul`, `SurfaceName`, `Strict`); the others import it
and are imported by their routes and services (`from api.schemas.tips import ...`).
`docs/openapi.json` is generated from the routes that use them; a test fails when it drifts.
The Personalizer-compatible wire types live with their routes in `api/personalizer/schemas.py`.
"""
