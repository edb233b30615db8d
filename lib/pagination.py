"""Page-number pagination for the management API.

50 a page, `?page_size=` up to 200 (larger values are clamped, invalid ones
fall back to the default), a page out of range is a 404 in the error shape.
"""

from rest_framework.pagination import PageNumberPagination


class StandardPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200
    invalid_page_message = "This page does not exist."
