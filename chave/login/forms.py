from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from chave import policy
from chave.forms import AccessibleForm
from chave.identity.validation import check_pin_rules, parse_identifier


class CredentialsForm(AccessibleForm):
    identifier = forms.CharField(
        label=_("Mobile number or e-mail"),
        help_text=_("Portuguese numbers need no country code; others start with + and the country code."),
        max_length=254,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}),
        error_messages={"required": _("Enter your mobile number or e-mail address."),
                        "max_length": _("This is neither a mobile number nor an e-mail address.")},
    )
    pin = forms.CharField(
        label=_("PIN of the Digital Mobile Key"),
        max_length=64,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "inputmode": "numeric"}),
        error_messages={"required": _("Enter your PIN."), "max_length": _("The PIN has at most 8 digits.")},
    )

    def clean_identifier(self):
        return parse_identifier(self.cleaned_data["identifier"])


class ChannelForm(AccessibleForm):
    channel = forms.ChoiceField(
        label=_("Where should we send your security code?"),
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose where to receive the code."),
                        "invalid_choice": _("Choose one of the options shown.")},
    )

    def __init__(self, *args, options=(), **kwargs):
        super().__init__(*args, **kwargs)
        labels = {"sms": _("SMS to %s"), "email": _("E-mail to %s"), "x": _("X direct message to %s")}
        self.fields["channel"].choices = [(o.channel, labels[o.channel] % o.masked) for o in options]


class CodeForm(AccessibleForm):
    code = forms.CharField(
        label=_("Security code"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "class": "code",
                                      "pattern": "[0-9 ]*"}),
        error_messages={"required": _("Enter the security code you received."),
                        "max_length": _("The security code has 6 digits.")},
    )

    def clean_code(self):
        code = self.cleaned_data["code"].replace(" ", "")
        if not (code.isascii() and code.isdigit() and len(code) == policy.get("code_digits")):
            raise ValidationError(_("The security code has %(n)d digits.") % {"n": policy.get("code_digits")},
                                  code="code_format")
        return code


class NewPinForm(AccessibleForm):
    new_pin = forms.CharField(
        label=_("New PIN"), max_length=64, strip=False,
        help_text=_("4 to 8 digits. Not one repeated digit, not a run like 1234, not your birth date."),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "inputmode": "numeric"}),
        error_messages={"required": _("Choose a new PIN.")},
    )
    new_pin_again = forms.CharField(
        label=_("New PIN again"), max_length=64, strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "inputmode": "numeric"}),
        error_messages={"required": _("Type the new PIN again.")},
    )

    def __init__(self, *args, birth_date=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.birth_date = birth_date

    def clean_new_pin(self):
        return check_pin_rules(self.cleaned_data["new_pin"], birth_date=self.birth_date)

    def clean(self):
        data = super().clean()
        if data.get("new_pin") and data.get("new_pin_again") is not None and data["new_pin"] != data["new_pin_again"]:
            self.add_error("new_pin_again", ValidationError(_("The two PINs are not the same."), code="pin_mismatch"))
        return data
