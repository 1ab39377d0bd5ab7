"""The base of every error a user can fix (config, missing model, server down, bad files)."""


class UserError(Exception):
    """Printed by the CLI as one line, without a traceback."""
