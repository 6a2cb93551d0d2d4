"""The one exception the command line turns into a one-line message and exit status 2."""

from __future__ import annotations


class ClientError(Exception):
    """A problem the user can fix (a file, a column, a URL, a token): the message says what and how."""
