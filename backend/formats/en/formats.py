"""English date formats with the time zone: an admin reading "01:05" must know whose 01:05 it is."""

DATETIME_FORMAT = "N j, Y, H:i T"
SHORT_DATETIME_FORMAT = "Y-m-d H:i T"
TIME_FORMAT = "H:i T"
