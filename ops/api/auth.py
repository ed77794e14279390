"""Bearer-token authentication for machine clients."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from django.db import DatabaseError
from django.http import HttpRequest

from ops.api.errors import ApiError
from ops.api.models import ApiClient, Scope, hash_token
from ops.bearer import bearer_token
from ops.trading.gate import Sender

logger = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="investiq"'}


def require_token(request: HttpRequest) -> str:
    """The request's bearer token, or 401: checked before anything touches the database."""
    token = bearer_token(request)
    if token is None:
        raise ApiError(401, "unauthorized", "Send 'Authorization: Bearer <token>'.", headers=_CHALLENGE)
    return token


@dataclass(frozen=True)
class Credentials:
    """A request's bearer token and the scope its endpoint needs, not yet checked."""

    token: str = field(repr=False)
    scope: str

    def client(self) -> ApiClient:
        """The client, or the answer that refuses it: 401 (unknown or revoked), 403 (scope)."""
        client = ApiClient.objects.for_token(self.token)
        if client is None:
            # One answer for unknown and revoked tokens: no hint about which tokens exist.
            raise ApiError(401, "unauthorized", "The token is unknown or revoked.", headers=_CHALLENGE)
        client.touch()
        if not client.has_scope(self.scope):
            raise ApiError(
                403,
                "forbidden_scope",
                f"This token lacks the '{self.scope}' scope that this endpoint needs "
                f"({Scope(self.scope).label.lower()}); it has: {client.scopes}. An administrator "
                f"issues a token with it: manage.py create_api_token NAME --scopes {self.scope}",
            )
        return client

    def sender(self) -> Sender:
        """client()'s check as SQL, for the trade gate to run in its own statement: an
        active client with this token and scope, or no row. Where it finds none, client()
        gives the answer that says why."""
        return Sender(
            table=ApiClient._meta.db_table,
            # has_scope() in SQL: scopes is canonical, comma-separated (the table's check).
            condition="sender.token_hash = %s AND sender.is_active AND (',' || sender.scopes || ',') LIKE %s",
            params=(hash_token(self.token), f"%,{self.scope},%"),
            columns=("id", "last_used_at"),
            found=_touch,
        )


def _touch(client: dict) -> None:
    """last_used_at for a client the gate's statement found. That statement has committed
    by now, so a failure here must not change its answer: last_used_at is a courtesy."""
    try:
        ApiClient.objects.touch(client["id"], client["last_used_at"])
    except DatabaseError as exc:
        logger.warning("could not record the use of API client %s: %s", client["id"], exc)
