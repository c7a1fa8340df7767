"""German as the console writes it (Django's German otherwise): 04.12.2026, 24-hour times
to the second."""

TIME_FORMAT = "H:i:s"
SHORT_DATE_FORMAT = "d.m.Y"
SHORT_DATETIME_FORMAT = "d.m.Y H:i:s"
