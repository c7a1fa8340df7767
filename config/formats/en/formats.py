"""English (en, en-us, en-gb, ...) with 24-hour times, as the console writes them: the
admin shows 00:50:12 where Django's English would show "12:50 a.m.". Dates stay Django's."""

TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "N j, Y, H:i"
SHORT_DATETIME_FORMAT = "m/d/Y H:i"
