from axes.apps import AppConfig as AxesConfig


class LoginThrottlingConfig(AxesConfig):
    """django-axes as installed here: its models under a name staff recognise in the admin."""

    verbose_name = "Login throttling"
