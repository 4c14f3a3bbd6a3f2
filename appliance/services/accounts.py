"""Accounts of the tablet UI: set-up, passphrases, guiders and administrators, logins."""

from __future__ import annotations

from appliance.catalog import Catalog, User
from appliance.errors import AuthError, InputError

DEFAULT_USER = "admin"


def set_passphrase(catalog: Catalog, name: str, passphrase: str, *,
                   actor: str) -> tuple[User, bool]:
    """`vigbox passwd`: set an account's passphrase; a missing account is created, as an
    administrator if it is the first account or is called `admin`."""
    admin = True if (name == DEFAULT_USER or catalog.accounts.count() == 0) else None
    return catalog.accounts.set_passphrase(name, passphrase, admin=admin, actor=actor)


def first_account(catalog: Catalog, name: str, passphrase: str) -> User:
    """The set-up page: the first administrator, only while there is no account at all."""
    with catalog.db.transaction():
        if catalog.accounts.count():
            raise AuthError("the box already has accounts: log in instead")
        return catalog.accounts.set_passphrase(name, passphrase, admin=True, actor=name)[0]


def add_user(catalog: Catalog, name: str, passphrase: str, *, admin: bool,
             actor: str) -> User:
    """A new guider (or administrator) account."""
    return catalog.accounts.add(name, passphrase, admin=admin, actor=actor)


def remove_user(catalog: Catalog, name: str, *, actor: str) -> None:
    """Remove an account (never the last administrator, never oneself from the UI)."""
    if name == actor:
        raise InputError("you cannot remove your own account while logged in with it")
    catalog.accounts.remove(name, actor=actor)


def list_users(catalog: Catalog) -> list[User]:
    """Every account."""
    return catalog.accounts.list()


def log_in(catalog: Catalog, name: str, passphrase: str, *, client: str) -> User:
    """Check a login (throttled per account and per client); AuthError if refused."""
    if not isinstance(name, str) or not isinstance(passphrase, str):
        raise AuthError("wrong account name or passphrase")
    return catalog.accounts.authenticate(name.strip().lower(), passphrase, client=client)
