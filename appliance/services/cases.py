"""Cases and consent: pseudonymous codes, and what each family agreed to, with dates."""

from __future__ import annotations

from datetime import date

from appliance.catalog import Case, Catalog, Consent, check_scope
from appliance.errors import InputError


def parse_scopes(text: str) -> list[Consent]:
    """Scopes from a comma-separated list ("filming,supervision")."""
    return [check_scope(s.strip()) for s in text.split(",") if s.strip()]


def consent_date(when: str | None) -> str:
    """The date consent was given: today by default, never in the future."""
    if when is None:
        return date.today().isoformat()
    try:
        day = date.fromisoformat(when)
    except ValueError:
        raise InputError(f"consent date {when!r} is not YYYY-MM-DD") from None
    if day > date.today():
        raise InputError(f"consent date {when} is in the future; give the day the family "
                         "signed (check the box's clock if that was today)")
    return day.isoformat()


def add_case(catalog: Catalog, code: str, scopes: list[Consent], *, when: str | None,
             actor: str) -> Case:
    """Register a case with the consent scopes given on `when` (default today)."""
    day = consent_date(when)
    return catalog.cases.add(code, {s: day for s in scopes}, actor=actor)


def change_consent(catalog: Catalog, code: str, *, give: list[Consent],
                   withdraw: list[Consent], when: str | None, actor: str) -> Case:
    """Record consent given (on `when`) and withdrawn for scopes of a case."""
    if not give and not withdraw:
        raise InputError("say which consent changes: --give and/or --withdraw "
                         f"with scopes from {','.join(c.value for c in Consent)}")
    if set(give) & set(withdraw):
        raise InputError("a scope cannot be given and withdrawn at once")
    day = consent_date(when)
    changes: dict[Consent, str | None] = {s: day for s in give} | {s: None for s in withdraw}
    return catalog.cases.set_consent(code, changes, actor=actor)


def list_cases(catalog: Catalog) -> list[Case]:
    """All cases, by code."""
    return catalog.cases.list()
