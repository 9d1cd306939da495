"""Forms of the signing pages. A new signing PIN is the login's new-PIN question (same rules, typed
twice); the security code is the login's field."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from chave import policy
from chave.login.forms import CodeForm, LoginForm, NewPinForm

from . import area

class NewSigningPinForm(NewPinForm):
    """A new signing PIN typed twice (it must also differ from the login PIN: the service says)."""


class SigningPinForm(LoginForm):
    signing_pin = forms.CharField(
        label=_("Signing PIN"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "inputmode": "numeric"}),
        error_messages={"required": _("Enter your signing PIN.")},
    )

    def clean_signing_pin(self):
        pin = self.cleaned_data["signing_pin"]
        low, high = policy.get("pin_min_length"), policy.get("pin_max_length")
        if not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
            raise forms.ValidationError(_("The PIN must have %(low)d to %(high)d digits, digits only.")
                                        % {"low": low, "high": high}, code="pin_format")
        return pin


class UploadForm(LoginForm):
    level = forms.ChoiceField(
        label=_("Signature level"), initial="B-T",
        choices=[("B-T", _("PAdES B-T: signature with a time-stamp")),
                 ("B-LT", _("PAdES B-LT: with validation data embedded")),
                 ("B-LTA", _("PAdES B-LTA: with validation data and a document time-stamp"))],
    )


class PlacementForm(forms.Form):
    """Where one document's signature shows: a page, or nowhere (invisible), and a corner of the
    page or the point the citizen clicked on its image (offered once there is one)."""

    page = forms.TypedChoiceField(label=_("Page"), coerce=int)
    position = forms.ChoiceField(label=_("Position on the page"))

    def __init__(self, *args, document: area.Document, **kwargs):
        super().__init__(*args, initial={"page": document.page, "position": document.position}, **kwargs)
        pages = [(n, str(n)) for n in range(1, document.pages + 1)]
        self.fields["page"].choices = [(0, _("Invisible signature")), *pages]
        positions = [("bottom-left", _("Bottom left")), ("bottom-right", _("Bottom right")),
                     ("top-left", _("Top left")), ("top-right", _("Top right"))]
        if document.point:
            positions.append((area.POINT, _("Where you clicked")))
        self.fields["position"].choices = positions


UNREADABLE_CLICK = _("The place you clicked could not be read: click on the page image again.")


class PageViewForm(forms.Form):
    """What the citizen does with one document's page images, without JavaScript: ``show`` a page
    (a thumbnail, the previous or next pages), or click on the image of page ``shown``
    (``<input type="image" name="dN-at">``: the browser sends ``dN-at.x`` and ``dN-at.y``, CSS
    pixels from the image's top-left corner, the image being shown at :func:`area.view_size`)."""

    shown = forms.IntegerField(required=False, widget=forms.HiddenInput,
                               error_messages={"invalid": _("Choose a page of this document.")})
    show = forms.IntegerField(required=False, error_messages={"invalid": _("Choose a page of this document.")})

    def __init__(self, *args, document: area.Document, **kwargs):
        super().__init__(*args, **kwargs)
        self.document = document
        for name in ("at.x", "at.y"):
            self.fields[name] = forms.FloatField(required=False, error_messages={"invalid": UNREADABLE_CLICK})

    def _page(self, name: str) -> int | None:
        page = self.cleaned_data.get(name)
        if page is not None and not 1 <= page <= self.document.pages:
            self.add_error(name, _("This document has no page %(page)d.") % {"page": page})
            return None
        return page

    def clean(self):
        self._page("show")
        shown = self._page("shown")
        x, y = self.cleaned_data.get("at.x"), self.cleaned_data.get("at.y")
        if self.errors or (x is None and y is None):
            return self.cleaned_data
        if x is None or y is None or shown is None:
            raise forms.ValidationError(UNREADABLE_CLICK, code="click_unreadable")
        width, height = area.view_size(self.document, shown)
        if not (0 <= x <= width and 0 <= y <= height):
            raise forms.ValidationError(_("The place you clicked is outside the page image."), code="click_outside")
        return self.cleaned_data

    def clicked(self) -> tuple[int, float, float] | None:
        """The page clicked and the point as fractions of it (from the left, from the top); None
        without a click, or for a keyboard's press of the image (browsers send 0, 0 then)."""
        x, y = self.cleaned_data.get("at.x"), self.cleaned_data.get("at.y")
        if x is None or y is None or (x == 0 and y == 0):
            return None
        width, height = area.view_size(self.document, self.cleaned_data["shown"])
        return self.cleaned_data["shown"], x / width, y / height


__all__ = ["CodeForm", "NewSigningPinForm", "SigningPinForm", "UploadForm", "PlacementForm", "PageViewForm"]
