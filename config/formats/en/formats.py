"""English (en, en-us, en-gb, ...) as the console writes it: dates as ISO (2026-12-04, the
detectors' own form), times in 24 hours; the admin shows 00:50:12 where Django's English
would show "12:50 a.m."."""

TIME_FORMAT = "H:i:s"
DATETIME_FORMAT = "N j, Y, H:i"
SHORT_DATE_FORMAT = "Y-m-d"
# A moment to the second: the console's timestamps (acknowledged at, the history's).
SHORT_DATETIME_FORMAT = "Y-m-d H:i:s"
