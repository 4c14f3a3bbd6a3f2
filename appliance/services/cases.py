"""Cases and consent: pseudonymous codes, and what each family agreed to, with dates."""

from __future__ import annotations

import shutil
from datetime import date

from appliance.catalog import Case, Catalog, Consent, ErasePlan, check_scope
from appliance.errors import BusyError, InputError


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


def close_case(catalog: Catalog, code: str, *, actor: str) -> Case:
    """The work with the family has ended: its raw recordings expire (sync.raw_keep_days)
    once what is due from them is at the office."""
    return catalog.cases.close(code, actor=actor)


def erase_case(catalog: Catalog, code: str, *, confirm: str, actor: str) -> ErasePlan:
    """Erase a case on the family's request: `confirm` must repeat the code. Nothing of it
    is sent from this moment; its recordings, clips, stills, review films and notes leave
    the box; the office is told at the next sync (it holds the only copies left)."""
    if confirm != code:
        raise InputError(f"to erase case {code}, confirm by giving its code again; "
                         "nothing was erased")
    plan = catalog.erasure.plan(code)
    if plan.busy:
        raise BusyError(f"case {code} cannot be erased now: {'; '.join(plan.busy)}; "
                        "try again when it is done (nothing was erased)")
    catalog.cases.mark_erased(code, actor=actor)
    for path in plan.files:
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
    catalog.erasure.remove_rows(plan, actor=actor)
    return plan
