"""
Who may use the admin API: HTTP Basic against C{GATEWAY_ADMIN_API_USERS}.

Credentials are compared as SHA-256 digests with C{hmac.compare_digest},
against every configured user whatever matched, so neither the time taken
nor the answer tells a caller which part was wrong.  Nothing here logs a
user name or password.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence

from twisted.web.iweb import IRequest
from zope.interface import Interface, implementer

from kgateway.config import AdminUser

REALM = "kgateway"


class IAdminAuth(Interface):
    """Decides whether a request may use the guarded parts of the admin API."""

    def allows(request: IRequest) -> bool:
        """Whether C{request} carries valid credentials (or none are needed)."""

    def allows_writes(request: IRequest) -> bool:
        """Whether C{request} may change the cluster's configuration (an C{admin} user)."""


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


@implementer(IAdminAuth)
class BasicAuth:
    """HTTP Basic against a fixed list of users."""

    def __init__(self, users: Sequence[AdminUser]) -> None:
        self._users = [
            (_digest(u.username.encode()), _digest(u.password.encode()), u) for u in users
        ]

    def user(self, request: IRequest) -> AdminUser | None:
        """The user whose credentials the request carries, or None."""
        name = _digest(request.getUser())
        password = _digest(request.getPassword())
        found = None
        for user_digest, password_digest, user in self._users:
            # Both comparisons always run, for every user: constant time.
            match = hmac.compare_digest(user_digest, name) & hmac.compare_digest(
                password_digest, password
            )
            if match and found is None:
                found = user
        return found

    def allows(self, request: IRequest) -> bool:
        """Whether the request names a configured user with the right password."""
        return self.user(request) is not None

    def allows_writes(self, request: IRequest) -> bool:
        """Whether the request names a configured user with C{admin: true}."""
        user = self.user(request)
        return user is not None and user.admin


@implementer(IAdminAuth)
class OpenOnLoopback:
    """No users, by the operator's explicit choice, on a loopback address only."""

    def allows(self, request: IRequest) -> bool:
        """Everyone who can reach the loopback address."""
        return True

    def allows_writes(self, request: IRequest) -> bool:
        """Everyone: the operator chose no users at all."""
        return True
