"""The login forms: parse what the citizen typed, with a message tied to each field.

Formats are checked here, before any service runs, so that a typo costs no PIN attempt and
issues no code. Lengths come from the policy table.
"""

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from chave import policy
from chave.forms import AccessibleForm
from chave.identity.validation import MAX_IDENTIFIER_LENGTH, check_pin_rules, parse_identifier


def _pin_format_error() -> ValidationError:
    # The same words as chave.identity.validation.check_pin_rules, so one translation serves both.
    low, high = policy.get("pin_min_length"), policy.get("pin_max_length")
    return ValidationError(
        _("The PIN must have %(low)d to %(high)d digits, digits only.") % {"low": low, "high": high},
        code="pin_format",
    )


class LoginForm(AccessibleForm):
    """A field sent more than once (a tampered or scripted request) is refused, not guessed at."""

    def _clean_fields(self):
        super()._clean_fields()
        getlist = getattr(self.data, "getlist", None)
        if getlist is None:
            return
        for name in self.fields:
            if len(getlist(self.add_prefix(name))) > 1:
                self._errors.pop(name, None)
                self.cleaned_data.pop(name, None)
                self.add_error(name, ValidationError(_("Enter one value only."), code="multiple_values"))


class CredentialsForm(LoginForm):
    identifier = forms.CharField(
        label=_("Mobile number or e-mail"),
        help_text=_("Portuguese numbers need no country code; others start with + and the country code."),
        max_length=MAX_IDENTIFIER_LENGTH,
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}),
        error_messages={"required": _("Enter your mobile number or e-mail address."),
                        "max_length": _("This is neither a mobile number nor an e-mail address.")},
    )
    pin = forms.CharField(
        label=_("PIN of the Digital Mobile Key"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password", "inputmode": "numeric"}),
        error_messages={"required": _("Enter your PIN.")},
    )

    def clean_identifier(self):
        return parse_identifier(self.cleaned_data["identifier"])

    def clean_pin(self):
        # Format only (ASCII digits, policy length): not the triviality rules, which are for new PINs.
        pin = self.cleaned_data["pin"]
        low, high = policy.get("pin_min_length"), policy.get("pin_max_length")
        if not (pin.isascii() and pin.isdigit() and low <= len(pin) <= high):
            raise _pin_format_error()
        return pin


class ChannelForm(LoginForm):
    channel = forms.ChoiceField(
        label=_("Where should we send your security code?"),
        widget=forms.RadioSelect,
        error_messages={"required": _("Choose where to receive the code."),
                        "invalid_choice": _("Choose one of the options shown.")},
    )

    def __init__(self, *args, options=(), **kwargs):
        super().__init__(*args, **kwargs)
        labels = {"sms": _("SMS to %s"), "email": _("E-mail to %s"), "x": _("X direct message to %s"),
                  "app": _("A code in the Chave app on “%s”"),
                  "app_approve": _("Approve in the Chave app (you match a number)"),
                  "app_offline": _("Type a code the Chave app makes (works without network)")}
        self.fields["channel"].choices = [
            (o.channel, labels[o.channel.split(":")[0]].replace("%s", o.masked)) for o in options]


class CodeForm(LoginForm):
    code = forms.CharField(
        label=_("Security code"),
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "class": "code",
                                      "pattern": "[0-9 ]*"}),
        error_messages={"required": _("Enter the security code you received.")},
    )

    def clean_code(self):
        digits = policy.get("code_digits")
        code = self.cleaned_data["code"].replace(" ", "")
        if not (code.isascii() and code.isdigit() and len(code) == digits):
            raise ValidationError(_("The security code has %(n)d digits.") % {"n": digits}, code="code_format")
        return code


class NewPinForm(LoginForm):
    new_pin = forms.CharField(
        label=_("New PIN"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "inputmode": "numeric"}),
        error_messages={"required": _("Choose a new PIN.")},
    )
    new_pin_again = forms.CharField(
        label=_("New PIN again"), strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password", "inputmode": "numeric"}),
        error_messages={"required": _("Type the new PIN again.")},
    )

    def __init__(self, *args, birth_date=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.birth_date = birth_date
        self.fields["new_pin"].help_text = _(
            "%(low)d to %(high)d digits. Not one repeated digit, not a run like 1234, not your birth date."
        ) % {"low": policy.get("pin_min_length"), "high": policy.get("pin_max_length")}

    def clean_new_pin(self):
        return check_pin_rules(self.cleaned_data["new_pin"], birth_date=self.birth_date)

    def clean(self):
        data = super().clean()
        if data.get("new_pin") and data.get("new_pin_again") is not None and data["new_pin"] != data["new_pin_again"]:
            self.add_error("new_pin_again", ValidationError(_("The two PINs are not the same."), code="pin_mismatch"))
        return data
