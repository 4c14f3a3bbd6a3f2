"""What leaves the box: media the office has verified, after a grace period (never what is
unverified, never what is chosen for the next shared review), a closed case's recordings
after their days, and a case erased on the family's request (the office is told)."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import pytest

from appliance.catalog import Consent, SyncKind
from appliance.errors import InputError
from appliance.services import cases as case_service
from appliance.services import clock
from appliance.services.app import App
from appliance.sync.destinations import open_destination
from appliance.sync.office import decrypt_folder, load_identities
from appliance.sync.run import Summary, SyncRun
from tests.sync_support import office_folder

DAY = 86400.0


@pytest.fixture
def box(app: App, tmp_path: Path) -> tuple[App, Path, Path]:
    """The App set up to sync to an office folder; (app, office folder, office key)."""
    return office_folder(app, tmp_path, device_id="box-ret", keep_days_after_sync=30,
                         raw_keep_days=60)


def run_at(app: App, days: float, **sync: Any) -> Summary:
    """A sync run as if `days` from now (the office as configured, or changed)."""
    config = app.config
    if sync:
        config = dataclasses.replace(config, sync=dataclasses.replace(config.sync, **sync))
    return SyncRun(app.catalog, config, open_destination(config, app.layout),
                   clock=lambda: time.time() + days * DAY).run()


def now_ms(days: float) -> int:
    """Epoch ms `days` from now."""
    return round((time.time() + days * DAY) * 1000)


def audited(app: App, action: str) -> list[str]:
    return [str(e.subject) for e in app.catalog.audit.entries() if e.action == action]


def test_nothing_unverified_is_deleted(box: tuple[App, Path, Path], media: dict[str, str],
                                       tmp_path: Path) -> None:
    app, _, _ = box
    app.catalog.cases.close("FAM-1", actor="test")
    summary = run_at(app, 400, destination=f"file://{tmp_path / 'not-mounted'}")
    assert summary.failed and summary.deleted == []
    for name in ("clip1", "clip2"):
        assert app.catalog.media.clip(media[name]).path.is_file()  # type: ignore[union-attr]
    rec = app.catalog.recordings.get(app.catalog.media.clip(media["clip1"]).recording_id)
    assert rec.path is not None and rec.path.is_file(), "its clips still wait to be sent"


def test_verified_media_goes_after_the_grace_period(box: tuple[App, Path, Path],
                                                    media: dict[str, str]) -> None:
    app, _, _ = box
    app.catalog.review_items.choose("FAM-1", [("clip", media["clip1"], None)], actor="test")
    assert run_at(app, 0).uploaded == 6
    assert run_at(app, 29).deleted == [], "not before 30 days"
    summary = run_at(app, 31)
    assert sorted(summary.deleted) == sorted([media["clip2"], media["still"], media["other"]])
    assert app.catalog.media.clip(media["clip2"]).path is None
    kept = app.catalog.media.clip(media["clip1"]).path
    assert kept is not None and kept.is_file(), "chosen for the next shared review"
    assert sorted(audited(app, "retention.delete")) == sorted(summary.deleted)


def test_a_closed_cases_recording_expires(box: tuple[App, Path, Path],
                                          media: dict[str, str]) -> None:
    app, _, _ = box
    rec_id = app.catalog.media.clip(media["clip1"]).recording_id
    assert run_at(app, 0).failed == []
    assert run_at(app, 100).deleted.count(rec_id) == 0, "the case is not closed"
    app.catalog.cases.close("FAM-1", actor="test")
    assert rec_id not in run_at(app, 59).deleted
    summary = run_at(app, 61)
    assert rec_id in summary.deleted
    rec = app.catalog.recordings.get(rec_id)
    assert rec.path is None and "after the case closed" in rec.problems[-1]
    other = app.catalog.recordings.get(app.catalog.media.clip(media["other"]).recording_id)
    assert other.path is not None and other.path.is_file(), "FAM-2 is not closed"


def test_a_clock_set_far_ahead_does_not_age_what_the_office_holds(
        box: tuple[App, Path, Path], media: dict[str, str]) -> None:
    app, _, _ = box
    rec_id = app.catalog.media.clip(media["clip1"]).recording_id
    assert run_at(app, 0).uploaded == 6
    app.catalog.cases.close("FAM-1", actor="test")
    # Someone sets the box's clock three years ahead; sync's runs then see that clock.
    ahead = 3 * 365
    clock.set_clock(app, now_ms(ahead), actor="admin", admin=True)
    assert run_at(app, ahead + 1).deleted == [], "the waits start again at the jump"
    assert sorted(run_at(app, ahead + 31).deleted) == sorted(
        [media["clip1"], media["clip2"], media["still"], media["other"]])
    assert rec_id not in run_at(app, ahead + 59).deleted
    assert run_at(app, ahead + 61).deleted == [rec_id]


@pytest.mark.parametrize("then_days, deleted", [
    # A small correction after the jump does not end it.
    (40.5, False),
    # A jump back (the mistake put right, or over-shot) ends it: the clock is true again.
    (38, True),
])
def test_only_the_newest_big_clock_change_restarts_the_waits(
        box: tuple[App, Path, Path], media: dict[str, str], then_days: float,
        deleted: bool) -> None:
    app, _, _ = box
    assert run_at(app, 0).uploaded == 6
    clock.set_clock(app, now_ms(40), actor="admin", admin=True)
    clock.set_clock(app, now_ms(then_days), actor="admin", admin=True)
    assert bool(run_at(app, 45).deleted) is deleted


def test_a_jump_undone_by_network_time_no_longer_holds_anything(
        box: tuple[App, Path, Path], media: dict[str, str]) -> None:
    app, _, _ = box
    assert run_at(app, 0).uploaded == 6
    clock.set_clock(app, now_ms(3 * 365), actor="admin", admin=True)
    # Network time put the clock back (not in the audit log): it is earlier than where
    # the jump landed, so the jump was undone and the waits count from the true dates.
    assert len(run_at(app, 31).deleted) == 4


def test_erasing_a_case(box: tuple[App, Path, Path], media: dict[str, str],
                        tmp_path: Path) -> None:
    app, office, key = box
    assert run_at(app, 0).failed == []
    catalog = app.catalog
    rec_id = catalog.media.clip(media["clip1"]).recording_id
    folder = catalog.recordings.get(rec_id).dir
    catalog.moments.add(rec_id, 1.0, source="ui", actor="test", note="a case note")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="confirm"):
        case_service.erase_case(catalog, "FAM-1", confirm="FAM-2", actor="guider")
    assert catalog.recordings.exists(rec_id)
    plan = case_service.erase_case(catalog, "FAM-1", confirm="FAM-1", actor="guider")
    assert plan.counts() == {"recordings": 1, "clips": 2, "stills": 1, "films": 0}
    assert not folder.exists() and not catalog.recordings.exists(rec_id)
    case = catalog.cases.get("FAM-1")
    assert case.erased_at and not case.consent
    with catalog.db.read() as db:
        assert db.execute("SELECT COUNT(*) FROM moments WHERE recording_id=?",
                          (rec_id,)).fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM clips WHERE recording_id=?",
                          (rec_id,)).fetchone()[0] == 0
    assert "a case note" not in str([e.to_json() for e in catalog.audit.entries()])
    # The next sync tells the office, once; the other family's media is untouched.
    summary = run_at(app, 0)
    assert summary.uploaded == 1 and summary.failed == []
    assert catalog.sync.of(SyncKind.ERASURE, "FAM-1")
    assert run_at(app, 0).uploaded == 0
    report = decrypt_folder(office, tmp_path / "plain", load_identities(key))
    assert [e["case"] for e in report.erasures] == ["FAM-1"]
    assert catalog.media.clip(media["other"]).path.is_file()  # type: ignore[union-attr]
    assert catalog.cases.get("FAM-2").allows(Consent.FILMING)
    assert {"case.erase", "case.erase.done"} <= {e.action for e in catalog.audit.entries()}


def test_erase_from_the_command_line(vigbox: Any, media: dict[str, str]) -> None:
    wrong = vigbox("cases", "erase", "FAM-1", "--confirm", "FAM-9")
    assert wrong.returncode == 1 and "confirm" in wrong.error_line()
    done = vigbox("cases", "erase", "FAM-1", "--confirm", "FAM-1", "--json")
    assert done.returncode == 0, done.stderr
    assert done.json()["erased"] == "FAM-1" and done.json()["clips"] == 2
    audit = vigbox("audit", "--json").json()
    assert audit["intact"] is True
    assert "case.erase.done" in [e["action"] for e in audit["entries"]]
