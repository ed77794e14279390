"""What a probe may raise: a short vocabulary the runner turns into results."""


class DependencyUnavailable(Exception):
    """The dependency is down; the message says why, for a person."""


class NotConfigured(Exception):
    """The dependency has no URL or credentials here; reported, never as healthy."""
