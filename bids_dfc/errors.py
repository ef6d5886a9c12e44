"""Exceptions that bids_dfc turns into one-line, actionable error messages."""


class BidsDfcError(Exception):
    """Base class of every error bids_dfc reports to the user (exit code 1)."""


class InputError(BidsDfcError, ValueError):
    """The input (dataset, file, table or option value) is not usable as given.

    The message says what was wrong, where (file, subject, row, column) and what to do.
    """


class RegistrationError(BidsDfcError, RuntimeError):
    """A registration (T1w -> template, BOLD -> T1w) gave an implausible result."""
