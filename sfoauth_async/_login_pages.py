"""The HTML pages of a web login: errors at the callback, the logout form, logged out.

Plain HTML without scripts, every piece of text escaped. Each page has an element
``#sfoauth-page`` whose ``data-page`` names it, for tests and for styling.
"""

from __future__ import annotations

from html import escape

__all__ = ["logged_out_page", "login_problem_page", "logout_form_page"]

_STYLE = """
body { font-family: system-ui, sans-serif; background: #f3f3f3; margin: 0; color: #181818; }
main { max-width: 32rem; margin: 4rem auto; background: #fff; padding: 2rem;
       border: 1px solid #ddd; border-radius: .5rem; }
h1 { font-size: 1.4rem; margin-top: 0; }
.detail { color: #5c5c5c; font-size: .9rem; }
a.button, button { display: inline-block; background: #0176d3; color: #fff; border: 0;
       padding: .5rem 1rem; border-radius: .25rem; text-decoration: none; font-size: 1rem;
       cursor: pointer; }
"""


def _page(name: str, title: str, body: str) -> str:
    return (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n'
        f'<head><meta charset="utf-8"><meta name="viewport" content="width=device-width">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n"
        f'<body><main id="sfoauth-page" data-page="{escape(name)}">\n'
        f"<h1>{escape(title)}</h1>\n{body}\n</main></body>\n</html>\n"
    )


def login_problem_page(
    name: str, *, title: str, message: str, detail: str | None, login_path: str
) -> str:
    """A login that did not happen: what went wrong, and a link to start again.

    Example:
        ```python
        html = login_problem_page(
            "denied", title="Access denied", message="...", detail=None, login_path="/login"
        )
        ```
    """
    shown = f'<p class="detail" id="sfoauth-detail">{escape(detail)}</p>' if detail else ""
    body = (
        f'<p id="sfoauth-message">{escape(message)}</p>\n{shown}\n'
        f'<p><a class="button" id="sfoauth-login" href="{escape(login_path)}">'
        f"Log in with Salesforce</a></p>"
    )
    return _page(name, title, body)


def logout_form_page(logout_path: str) -> str:
    """The page behind a logout link: a button that posts the logout.

    Example:
        ```python
        html = logout_form_page("/logout/salesforce")
        ```
    """
    body = (
        "<p>Log out of this app and disconnect your Salesforce account from it?</p>\n"
        f'<form method="post" action="{escape(logout_path)}">'
        '<button type="submit" id="sfoauth-logout">Log out</button></form>'
    )
    return _page("logout", "Log out", body)


def logged_out_page(*, login_path: str, detail: str | None) -> str:
    """The page after a logout.

    Example:
        ```python
        html = logged_out_page(login_path="/login/salesforce", detail=None)
        ```
    """
    return login_problem_page(
        "logged-out",
        title="You are logged out",
        message="This app no longer holds your Salesforce session.",
        detail=detail,
        login_path=login_path,
    )
