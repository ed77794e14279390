"""Bearer-token authentication for machine clients."""

from __future__ import annotations

from django.http import HttpRequest

from ops.api.errors import ApiError
from ops.api.models import ApiClient
from ops.bearer import bearer_token

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="investiq"'}


def require_token(request: HttpRequest) -> str:
    """The request's bearer token, or 401: checked before anything touches the database."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "unauthorized", "Send 'Authorization: Bearer <token>'.", headers=_CHALLENGE)
    return token


def client_for(token: str) -> ApiClient:
    client = ApiClient.objects.for_token(token)
    if client is None:
        # One answer for unknown and revoked tokens: no hint about which tokens exist.
        raise ApiError(401, "unauthorized", "The token is unknown or revoked.", headers=_CHALLENGE)
    client.touch()
    return client
