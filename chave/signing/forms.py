"""Forms of the signing pages. A new signing PIN is the login's new-PIN question (same rules, typed
twice); the security code is the login's field."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from chave import policy
from chave.login.forms import CodeForm, LoginForm, NewPinForm

from . import pades

POSITIONS = {
    "bottom-left": (40, 40), "bottom-right": (355, 40), "top-left": (40, 740), "top-right": (355, 740),
}


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
    """Where one document's signature shows: a page, or nowhere (invisible)."""

    page = forms.TypedChoiceField(label=_("Page"), coerce=int)
    position = forms.ChoiceField(label=_("Position on the page"), initial="bottom-right", choices=[
        ("bottom-left", _("Bottom left")), ("bottom-right", _("Bottom right")),
        ("top-left", _("Top left")), ("top-right", _("Top right")),
    ])

    def __init__(self, *args, pages: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["page"].choices = [(0, _("Invisible signature"))] + [(n, str(n)) for n in range(1, pages + 1)]
        self.fields["page"].initial = pages

    def placement(self) -> pades.Placement:
        x, y = POSITIONS[self.cleaned_data["position"]]
        return pades.Placement(page=self.cleaned_data["page"], x=x, y=y)


__all__ = ["CodeForm", "NewSigningPinForm", "SigningPinForm", "UploadForm", "PlacementForm"]
