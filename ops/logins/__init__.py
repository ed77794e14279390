"""Login throttling for the console and the admin (one login view): django-axes counts
failed logins per username; this package says who is locked out until when, answers a
locked login, shows lockouts in the admin and releases one for a supervisor."""
