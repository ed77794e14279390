"""Dates and times as the console shows them, for the admin too: UTC, 24-hour, with seconds.

Django's English formats ("Dec. 2, 2026, 6:26 p.m.") drop the seconds and the zone, which
an on-call person comparing the admin with logs, Alertmanager and the console needs.
TIME_ZONE is UTC, so `T` prints "UTC". FORMAT_MODULE_PATH (settings) points here.
"""

DATE_FORMAT = "Y-m-d"
TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "Y-m-d H:i:s T"
SHORT_DATE_FORMAT = "Y-m-d"
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s T"
YEAR_MONTH_FORMAT = "Y-m"
MONTH_DAY_FORMAT = "m-d"
