"""One exception type for user mistakes, so the CLI and web app can report them cleanly."""


class FerkitError(Exception):
    """Bad input from the user: the message names the file or field and what was wrong."""
