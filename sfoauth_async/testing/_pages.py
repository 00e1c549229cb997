"""HTML pages of the authorize flow: login, approval and error.

Plain HTML forms with no JavaScript, so a headless browser (or a test posting the forms by
hand) can drive them. Element ids follow Salesforce's own pages where tests usually target
them: ``#username``, ``#password``, ``#Login``, ``#oaapprove``, ``#oadeny``.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape

__all__ = ["approval_page", "error_page", "login_page"]

_STYLE = """
body { font-family: sans-serif; background: #f3f3f3; margin: 0; }
main { max-width: 26rem; margin: 4rem auto; background: #fff; padding: 2rem;
       border: 1px solid #ddd; border-radius: .25rem; }
label, input { display: block; width: 100%; box-sizing: border-box; margin-bottom: .75rem; }
.error { color: #c23934; }
"""


def _page(title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        f'<head><meta charset="utf-8"><title>{escape(title)}</title>'
        f"<style>{_STYLE}</style></head>\n"
        f"<body><main>\n{body}\n</main></body>\n</html>\n"
    )


def _hidden(params: Mapping[str, str]) -> str:
    return "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in params.items()
    )


def login_page(params: Mapping[str, str], *, username: str = "", error: str | None = None) -> str:
    """The login form; it posts the credentials and the authorize parameters to ``/login``."""
    message = f'<p id="error" class="error" role="alert">{escape(error)}</p>' if error else ""
    body = f"""<h1>Login | Salesforce</h1>
{message}
<form id="login_form" name="login" method="post" action="/login">
{_hidden(params)}
<label for="username">Username</label>
<input type="email" id="username" name="username" value="{escape(username)}"
 autocomplete="username">
<label for="password">Password</label>
<input type="password" id="password" name="password" autocomplete="current-password">
<input type="submit" id="Login" name="Login" value="Log In">
</form>"""
    return _page("Login | Salesforce", body)


def approval_page(*, app_name: str, username: str, scopes: tuple[str, ...], pending: str) -> str:
    """The "Allow Access?" page; both buttons post to ``/approve``."""
    items = "\n".join(f"<li>{escape(scope)}</li>" for scope in scopes)
    body = f"""<h1>Allow Access?</h1>
<p><strong>{escape(app_name)}</strong> is asking to access your account
<strong>{escape(username)}</strong> with these permissions:</p>
<ul id="scopes">
{items}
</ul>
<form id="approve_form" method="post" action="/approve">
<input type="hidden" name="pending" value="{escape(pending)}">
<button type="submit" id="oaapprove" name="decision" value="allow">Allow</button>
<button type="submit" id="oadeny" name="decision" value="deny">Deny</button>
</form>"""
    return _page("Allow Access? | Salesforce", body)


def error_page(error: str, description: str) -> str:
    """The page shown instead of redirecting when the client or redirect URI is unknown."""
    body = f"""<h1>OAuth Error</h1>
<p class="error">We can't authorize you because of an OAuth error.
For more information, contact your Salesforce administrator.</p>
<p id="error" data-error="{escape(error)}">
error={escape(error)}<br>error_description={escape(description)}</p>"""
    return _page("OAuth Error | Salesforce", body)
