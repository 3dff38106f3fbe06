"""Template tags that Django 6.1 has and 5.2 lacks, for the console's templates.

``{% csp_nonce_attr %}`` is a built-in tag from Django 6.0 on (it renders the
Content Security Policy nonce, when there is one, on an inline ``<style>`` or
``<script>``). Django 5.2 has no CSP support, so there it renders nothing.
Templates that use it ``{% load django_jobs_compat %}``.
"""

from django import template
from django.template import defaulttags

register = template.Library()

if hasattr(defaulttags, "csp_nonce_attr"):
    register.simple_tag(takes_context=True, name="csp_nonce_attr")(
        defaulttags.csp_nonce_attr
    )
else:

    @register.simple_tag(takes_context=True)
    def csp_nonce_attr(context, media=None) -> str:
        return ""
