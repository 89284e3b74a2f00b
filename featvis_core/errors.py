"""The one exception type users see.

Anything the user can fix (a model, layer, channel or class that does not exist, a bad setting) raises
`FeatvisError` with a message that reads well on one line; the command line prints it without a
traceback. Every other exception is a bug and keeps its traceback.
"""


class FeatvisError(ValueError):
    """A user error: bad model, layer, unit or setting. Its message is one readable line."""
