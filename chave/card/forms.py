"""Forms of the Citizen Card pages. Where the question is the login's (a security code, a new PIN
typed twice) the field is the login's, so one translation serves both."""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from chave.identity.validation import MAX_IDENTIFIER_LENGTH, parse_email, parse_mobile
from chave.login.forms import LoginForm


class ContactsForm(LoginForm):
    """The contacts of a new key: a mobile number and/or an e-mail address."""

    mobile = forms.CharField(
        label=_("Mobile number"), required=False, max_length=MAX_IDENTIFIER_LENGTH,
        help_text=_("Portuguese numbers need no country code; others start with + and the country code."),
        widget=forms.TextInput(attrs={"autocomplete": "tel", "inputmode": "tel"}),
        error_messages={"max_length": _("This is not a valid mobile number.")},
    )
    email = forms.CharField(
        label=_("E-mail address"), required=False, max_length=MAX_IDENTIFIER_LENGTH,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autocapitalize": "none", "spellcheck": "false"}),
        error_messages={"max_length": _("This e-mail address is too long.")},
    )

    terms = forms.BooleanField(
        label=_("I have read and accept the terms of use"), required=True,
        error_messages={"required": _("To register, read and accept the terms of use.")},
    )

    def clean_mobile(self):
        value = self.cleaned_data["mobile"].strip()
        return parse_mobile(value) if value else ""

    def clean_email(self):
        value = self.cleaned_data["email"].strip()
        return parse_email(value) if value else ""

    def clean(self):
        data = super().clean()
        if not self.errors and not data.get("mobile") and not data.get("email"):
            raise ValidationError(_("Give a mobile number or an e-mail address (or both)."), code="no_contact")
        return data

