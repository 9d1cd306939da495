"""Shared form behaviour: every error is tied to its field for assistive technology."""

from __future__ import annotations

from django import forms


class AccessibleForm(forms.Form):
    """Adds ``aria-describedby`` (hint and error) and ``aria-invalid`` to fields with errors.

    The ids match ``templates/includes/field.html``: ``<id>_helptext`` and ``<id>_error``.
    """

    def full_clean(self):
        super().full_clean()
        for name, field in self.fields.items():
            if name in self.errors:
                bound = self[name]
                ids = [f"{bound.auto_id}_error"]
                if field.help_text:
                    ids.insert(0, f"{bound.auto_id}_helptext")
                field.widget.attrs["aria-describedby"] = " ".join(ids)
                field.widget.attrs["aria-invalid"] = "true"
