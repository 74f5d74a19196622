"""Who is calling: principals, roles, and how a request proves its principal."""
