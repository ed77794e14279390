"""The kill switch's exceptions: each says what to do about it."""


class TradingStateError(Exception):
    """Base: a transition was refused; nothing was changed."""


class NotPermitted(TradingStateError):
    pass


class InvalidTransition(TradingStateError):
    pass


class TwoPersonRuleRequired(TradingStateError):
    pass


class ResumeRequestInvalid(TradingStateError):
    pass
