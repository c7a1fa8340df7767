"""{% row_image row %}: a row's thumbnail linking to its image, and its path as text."""

from __future__ import annotations

from typing import Any

from django import template

from realtime.console import media
from realtime.console.rows import ViolationRow

register = template.Library()


@register.inclusion_tag("realtime/_row_image.html")
def row_image(row: ViolationRow) -> dict[str, Any]:
    return {"row": row, "image": media.row_image(row)}


@register.inclusion_tag("realtime/_row_thumbnail.html")
def row_thumbnail(row: ViolationRow) -> dict[str, Any]:
    """The thumbnail alone, as a link of its own (the admin's column)."""
    return {"image": media.row_image(row), "focusable": True}
