"""The example host's own page."""

from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html


def home(request: HttpRequest) -> HttpResponse:
    who = request.user.get_full_name() if request.user.is_authenticated else "nobody"
    return HttpResponse(
        format_html(
            "<!doctype html><title>Example host</title><p>Signed in as {}. "
            '<a href="/ops/jobs/">Operator console</a></p>',
            who,
        )
    )
