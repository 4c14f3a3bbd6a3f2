"""The tablet UI's doors: set-up, login, throttling, sessions, CSRF, headers, escaping."""

from __future__ import annotations

import pytest
from flask import Flask

from appliance.catalog.accounts import FREE_FAILURES, lockout_s
from appliance.errors import AuthError, LockedOutError
from appliance.services.app import App
from appliance.web.security import PUBLIC
from tests.web_support import PASSPHRASE, Tablet, csrf_of, make_app


def example_url(rule: object) -> str:
    """A URL for a rule, with plausible values for its arguments."""
    url = str(rule)
    for arg, value in (("<int(max=9007199254740991):moment_id>", "1"),
                       ("<int(max=9007199254740991):job_id>", "1"),
                       ("<int(max=9007199254740991):tag_id>", "1"),
                       ("<path:filename>", "app.css")):
        url = url.replace(arg, value)
    import re
    return re.sub(r"<[^>]+>", "x1", url)


def test_every_route_needs_a_login(flask_app: Flask) -> None:
    """Walk the whole URL map: nothing but the login pages answers a stranger."""
    client = flask_app.test_client()
    # A stranger with a token still gets nothing.
    token = csrf_of(client.get("/login", follow_redirects=True))
    checked = 0
    for rule in flask_app.url_map.iter_rules():
        if rule.endpoint in PUBLIC:
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            url = example_url(rule)
            response = client.open(url, method=method, headers={"X-CSRF-Token": token},
                                   json={} if method != "GET" else None)
            if url.startswith(("/api/", "/media/")):
                assert response.status_code == 401, (method, url, response.status_code)
                assert response.is_json and "log in" in response.get_json()["error"]
            else:
                assert response.status_code == 302, (method, url, response.status_code)
                assert response.headers["Location"].startswith("/login")
            checked += 1
    assert checked >= 30, "the walk must have reached the API, pages and media"


def test_public_endpoints_are_only_the_login_pages(flask_app: Flask) -> None:
    endpoints = {r.endpoint for r in flask_app.url_map.iter_rules()}
    assert PUBLIC <= endpoints
    assert PUBLIC == {"auth.login", "auth.setup", "auth.logout", "static"}


def test_first_visit_sets_up_the_administrator(app: App, flask_app: Flask) -> None:
    client = flask_app.test_client()
    assert client.get("/login").headers["Location"] == "/setup"
    token = csrf_of(client.get("/setup"))
    bad = client.post("/setup", data={"username": "admin", "password": "short",
                                      "confirm": "short", "csrf_token": token})
    assert bad.status_code == 400 and b"at least 8" in bad.data
    ok = client.post("/setup", data={"username": "Admin", "password": PASSPHRASE,
                                     "confirm": PASSPHRASE, "csrf_token": token})
    assert ok.status_code == 302
    assert app.catalog.accounts.get("admin").is_admin
    assert client.get("/").status_code == 200  # logged in by set-up
    # Set-up is over once an account exists: nobody can make a second "first" admin.
    stranger = flask_app.test_client()
    assert stranger.get("/setup").headers["Location"] == "/login"
    token = csrf_of(stranger.get("/login"))
    again = stranger.post("/setup", data={"username": "eve", "password": PASSPHRASE,
                                          "confirm": PASSPHRASE, "csrf_token": token})
    assert again.status_code == 302 and not app.catalog.accounts.exists("eve")


def test_login_wrong_passphrase_then_right(admin: Tablet, flask_app: Flask) -> None:
    tablet = Tablet(flask_app.test_client())
    wrong = tablet.log_in(passphrase="not the passphrase")
    assert wrong.status_code == 401 and b"wrong account name or passphrase" in wrong.data
    assert tablet.log_in().status_code == 302
    assert tablet.get("/api/recordings").status_code == 200


def test_login_lockout_grows_per_account(app: App) -> None:
    accounts = app.catalog.accounts
    accounts.set_passphrase("guider", PASSPHRASE, actor="test")
    t = 1000.0
    waits: list[float] = []
    client = 0
    while len(waits) < 4:
        client += 1  # a new address each time: only the account's own count grows
        try:
            accounts.authenticate("guider", "wrong guess", client=f"10.0.0.{client}", now=t)
        except LockedOutError as e:
            waits.append(e.retry_after_s)
            # Even the right passphrase is refused while locked.
            with pytest.raises(LockedOutError):
                accounts.authenticate("guider", PASSPHRASE, client="10.0.0.250", now=t)
            t += e.retry_after_s + 0.01
        except AuthError:
            pass
    assert client == FREE_FAILURES + 2 * len(waits) - 1, "the first failures are free"
    assert waits == [lockout_s(FREE_FAILURES + i) for i in range(4)]
    assert waits == sorted(waits) and waits[0] < waits[-1]
    assert lockout_s(FREE_FAILURES + 20) == lockout_s(FREE_FAILURES + 30)  # capped
    # Waited out, the right passphrase works and clears the count.
    accounts.authenticate("guider", PASSPHRASE, client="10.0.0.250", now=t)
    with pytest.raises(AuthError) as info:
        accounts.authenticate("guider", "wrong guess", client="10.0.0.251", now=t)
    assert not isinstance(info.value, LockedOutError)


def test_login_lockout_over_http_per_client(admin: Tablet, app: App,
                                            flask_app: Flask) -> None:
    app.catalog.accounts.set_passphrase("other", PASSPHRASE, actor="test")
    tablet = Tablet(flask_app.test_client())
    # Guessing across accounts from one client locks the client, not just one account.
    for name in ("a1", "a2", "a3"):
        assert tablet.log_in(name, "guess guess").status_code == 401
    locked = tablet.log_in("other", PASSPHRASE)
    assert locked.status_code == 429 and b"try again in" in locked.data
    # The account itself is not locked for a guider on another tablet.
    elsewhere = Tablet(flask_app.test_client())
    response = elsewhere.client.post(
        "/login", data={"username": "other", "password": PASSPHRASE,
                        "csrf_token": elsewhere.refresh_token()},
        environ_base={"REMOTE_ADDR": "10.42.0.7"})
    assert response.status_code == 302


def test_locked_api_answers_429_with_retry_after(app: App) -> None:
    from appliance.web.errors import status_of
    app.catalog.accounts.set_passphrase("g", PASSPHRASE, actor="test")
    for _ in range(FREE_FAILURES):
        with pytest.raises(AuthError):
            app.catalog.accounts.authenticate("g", "nope", client="c", now=50.0)
    with pytest.raises(LockedOutError) as info:
        app.catalog.accounts.authenticate("g", PASSPHRASE, client="c", now=50.0)
    assert info.value.retry_after_s > 0
    with make_app(app).test_request_context():
        assert status_of(info.value) == 429


def test_state_changes_need_the_csrf_token(admin: Tablet) -> None:
    body = {"code": "FAM-1", "scopes": ["filming"]}
    missing = admin.client.post("/api/cases", json=body)
    assert missing.status_code == 403 and "reload" in missing.get_json()["error"]
    wrong = admin.client.post("/api/cases", json=body, headers={"X-CSRF-Token": "x" * 43})
    assert wrong.status_code == 403
    assert admin.post("/api/cases", body).status_code == 201
    # A form without the token cannot log a guider out either.
    assert admin.client.post("/logout").status_code == 403
    assert admin.get("/api/cases").status_code == 200


def test_session_cookie_is_strict_and_http_only(app: App, flask_app: Flask) -> None:
    app.catalog.accounts.set_passphrase("admin", PASSPHRASE, admin=True, actor="test")
    tablet = Tablet(flask_app.test_client())
    tablet.refresh_token()
    response = tablet.client.post("/login", data={"username": "admin", "password": PASSPHRASE,
                                                  "csrf_token": tablet.token})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
    assert "Max-Age=1800" in cookie or "Expires" in cookie


def age_sessions(app: App, *, idle_s: float = 0, created_s: float = 0) -> None:
    """Move every session's clocks back, as if time had passed."""
    with app.catalog.db.transaction() as db:
        db.execute("UPDATE web_sessions SET seen=seen-?, created=created-?",
                   (idle_s, created_s))


def test_idle_session_ends(admin: Tablet, app: App) -> None:
    assert admin.get("/api/cases").status_code == 200
    age_sessions(app, idle_s=31 * 60)
    assert admin.get("/api/cases").status_code == 401
    assert admin.get("/").headers["Location"].startswith("/login")
    # A form sent after the timeout asks for a login, not a confusing CSRF refusal.
    assert admin.post("/api/cases", {"code": "FAM-1"}).status_code == 401


def test_polling_does_not_keep_an_idle_session_alive(admin: Tablet, app: App) -> None:
    age_sessions(app, idle_s=29 * 60)
    assert admin.get("/api/status", headers={"X-Vigbox-Poll": "1"}).status_code == 200
    age_sessions(app, idle_s=2 * 60)
    assert admin.get("/api/cases").status_code == 401


def test_a_busy_session_still_ends_after_a_working_day(admin: Tablet, app: App) -> None:
    age_sessions(app, created_s=11 * 3600)
    assert admin.get("/api/cases").status_code == 200
    age_sessions(app, created_s=1.1 * 3600)
    assert admin.get("/api/cases").status_code == 401


def test_logout_ends_the_session_on_the_box(admin: Tablet) -> None:
    copied = admin.client.get_cookie("vigbox")
    assert copied is not None
    response = admin.client.post("/logout", data={"csrf_token": admin.token})
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    admin.client.set_cookie("vigbox", copied.value)  # a cookie copied before logout
    assert admin.get("/api/cases").status_code == 401
    # Logging out again (an old page's button) just goes to the login page.
    assert admin.client.post("/logout").status_code == 302


def test_a_remade_account_does_not_revive_old_sessions(app: App, flask_app: Flask,
                                                       admin: Tablet) -> None:
    app.catalog.accounts.set_passphrase("bob", PASSPHRASE, actor="test")
    bob = Tablet(flask_app.test_client())
    assert bob.log_in("bob").status_code == 302
    app.catalog.accounts.remove("bob", actor="test")
    app.catalog.accounts.set_passphrase("bob", PASSPHRASE, admin=True, actor="test")
    assert bob.get("/api/users").status_code == 401


def test_a_new_passphrase_ends_older_sessions(admin: Tablet, app: App) -> None:
    app.catalog.accounts.set_passphrase("admin", "another long passphrase", actor="cli")
    assert admin.get("/api/cases").status_code == 401


def test_removed_account_is_logged_out(app: App, flask_app: Flask, admin: Tablet) -> None:
    app.catalog.accounts.set_passphrase("guider", PASSPHRASE, actor="test")
    guider = Tablet(flask_app.test_client())
    assert guider.log_in("guider").status_code == 302
    assert admin.call("DELETE", "/api/users/guider").status_code == 200
    assert guider.get("/api/cases").status_code == 401


def test_guiders_cannot_administer(app: App, flask_app: Flask, admin: Tablet) -> None:
    assert admin.post("/api/users", {"name": "guider", "password": PASSPHRASE}).status_code \
        == 201
    guider = Tablet(flask_app.test_client())
    assert guider.log_in("guider").status_code == 302
    assert guider.get("/api/users").status_code == 403
    assert guider.get("/accounts").status_code == 403
    assert guider.post("/api/tags", {"label": "Mine"}).status_code == 403
    assert guider.post("/api/users", {"name": "eve", "password": PASSPHRASE}).status_code \
        == 403
    # Nobody can remove the last administrator or their own account.
    assert admin.call("DELETE", "/api/users/admin").status_code == 400


@pytest.mark.parametrize("url", ["/", "/login", "/api/recordings", "/api/nothing",
                                 "/media/recording/x1", "/static/app.css"])
def test_security_headers_everywhere(admin: Tablet, url: str) -> None:
    response = admin.get(url)
    response.close()  # a file response holds the file open until closed
    csp = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_hold_no_inline_script_or_style(admin: Tablet) -> None:
    for url in ("/", "/cases", "/import", "/accounts"):
        html = admin.get(url).get_data(as_text=True)
        assert "<script>" not in html and " style=" not in html and "onclick=" not in html
        assert "<script src=" in html


def test_user_text_is_escaped(app: App, flask_app: Flask) -> None:
    app.catalog.accounts.set_passphrase("admin", PASSPHRASE, admin=True, actor="test")
    tablet = Tablet(flask_app.test_client())
    response = tablet.log_in('<script>alert(1)</script>', "whatever whatever")
    html = response.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_login_redirects_only_inside_the_box(admin: Tablet, flask_app: Flask) -> None:
    tablet = Tablet(flask_app.test_client())
    tablet.refresh_token()
    for target, expected in (("/cases", "/cases"), ("//evil.example/", "/"),
                             ("https://evil.example/", "/"), ("/%09/evil.example/x", "/"),
                             ("/%0a/evil.example/x", "/"), ("/%5C/evil.example", "/"),
                             ("/%20/evil.example", "/"), ("/review/x?y=1", "/review/x?y=1")):
        response = tablet.client.post(f"/login?next={target}", data={
            "username": "admin", "password": PASSPHRASE, "csrf_token": tablet.token})
        assert response.headers["Location"] == expected
        tablet.refresh_token()


def test_parallel_guesses_cannot_pass_an_open_lock(app: App) -> None:
    """Many guesses at once (a tablet's 16 server threads) still meet the lock."""
    import threading
    app.catalog.accounts.set_passphrase("admin", PASSPHRASE, admin=True, actor="test")
    outcomes: list[str] = []
    lock = threading.Lock()

    def guess(i: int) -> None:
        try:
            app.catalog.accounts.authenticate("admin", f"guess {i}", client=f"10.1.0.{i}")
        except LockedOutError:
            result = "locked"
        except AuthError:
            result = "checked"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=guess, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(outcomes) == 16
    assert outcomes.count("checked") <= FREE_FAILURES, outcomes


def test_large_bodies_are_refused_before_login(flask_app: Flask) -> None:
    client = flask_app.test_client()
    big = b"x" * (200 * 1024)
    response = client.post("/login", data={"username": "a", "password": "b",
                                           "csrf_token": "t", "junk": big.decode()})
    assert response.status_code == 413
    response = client.post("/api/cases", data=big, content_type="application/json")
    assert response.status_code in (401, 413)


def test_odd_csrf_tokens_are_refused_not_crashed(admin: Tablet) -> None:
    for token in ("\u00e9t\u00e9", "x" * 5000, ""):
        response = admin.client.post("/api/cases", json={"code": "FAM-1"},
                                     headers={"X-CSRF-Token": token.encode().decode("latin-1")})
        assert response.status_code in (403, 431), token


def test_a_tablets_occasional_typos_do_not_add_up(app: App) -> None:
    """A right login halves the client's count: a guider's typos over a day never grow
    into long lockouts, while guesses between one's own logins still meet the lock."""
    accounts = app.catalog.accounts
    accounts.set_passphrase("sam", PASSPHRASE, actor="test")
    for login in range(2 * FREE_FAILURES + 2):   # a typo before every login, all day
        with pytest.raises(AuthError) as info:
            accounts.authenticate("sam", "typo typo", client="10.42.0.9", now=100.0)
        assert not isinstance(info.value, LockedOutError), login
        accounts.authenticate("sam", PASSPHRASE, client="10.42.0.9", now=100.0)
    # Guessing at another account from the same tablet still locks it.
    for _ in range(FREE_FAILURES):
        with pytest.raises(AuthError):
            accounts.authenticate("admin", "guess guess", client="10.42.0.9", now=100.0)
    with pytest.raises(LockedOutError):
        accounts.authenticate("sam", PASSPHRASE, client="10.42.0.9", now=100.0)
