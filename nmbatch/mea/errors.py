"""The one exception the MEA job raises for bad inputs (as opposed to bugs)."""


class InputError(Exception):
    """A recording's inputs are missing, unreadable or inconsistent.

    The job turns it into a ``StageError`` naming the recording and the stage;
    any other exception is a bug and keeps its type and traceback.
    """
