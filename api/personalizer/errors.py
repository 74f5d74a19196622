"""Personalizer's error codes (`shared/PERSONALIZER.md`), as `api.errors` answers them."""

from __future__ import annotations

from api.errors import ApiError


class InvalidConfiguration(ApiError):
    code = "InvalidServiceConfiguration"


class InvalidPolicy(ApiError):
    code = "InvalidPolicyConfiguration"


class InvalidContract(ApiError):
    code = "InvalidEvaluationContract"


class JobNotFound(ApiError):
    status = 404
    code = "EvaluationNotFound"


class JobExists(ApiError):
    status = 409
    code = "Conflict"
