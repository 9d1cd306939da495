"""The personal area's forms. Fields and their messages are the login's where the question is
the same (the PIN, a security code, a new PIN typed twice), so one translation serves both;
a field sent twice is refused (:class:`chave.login.forms.LoginForm`)."""

import copy

from django import forms
from django.utils.translation import gettext_lazy as _

from chave.identity.models import ContactKind
from chave.identity.validation import MAX_IDENTIFIER_LENGTH, parse_email, parse_mobile, parse_x_user_id
from chave.login.forms import CodeForm, CredentialsForm, LoginForm, NewPinForm


class PinForm(LoginForm):
    """The current PIN, format only (the key decides whether it is right)."""

    pin = CredentialsForm.base_fields["pin"]
    clean_pin = CredentialsForm.clean_pin


class NewPinWithCodeForm(NewPinForm):
    """The code of a PIN change and the new PIN twice; without the code once it was right (the
    citizen then chose a PIN the rules refuse only after the code was spent)."""

    code = CodeForm.base_fields["code"]
    clean_code = CodeForm.clean_code
    field_order = ["code", "new_pin", "new_pin_again"]

    def __init__(self, *args, code_confirmed: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        if code_confirmed:
            del self.fields["code"]


class ContactForm(LoginForm):
    value = forms.CharField(max_length=MAX_IDENTIFIER_LENGTH)

    def __init__(self, *args, kind: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        field = self.fields["value"]
        if kind == ContactKind.MOBILE:
            field.label = _("New mobile number")
            field.help_text = _("Portuguese numbers need no country code; others start with + and the country code.")
            field.widget.attrs.update({"autocomplete": "tel", "inputmode": "tel"})
            field.error_messages = {"required": _("Enter a mobile number, such as 912 345 678."),
                                    "max_length": _("This is not a valid mobile number.")}
        elif kind == ContactKind.X:
            field.label = _("Your X account's user id")
            field.help_text = _("The number X gives your account (not the @name). The code is sent to you "
                                "there by direct message: allow direct messages from Chave.")
            field.widget.attrs.update({"inputmode": "numeric", "autocomplete": "off"})
            field.error_messages = {"required": _("Enter your X account's user id."),
                                    "max_length": _("An X account is given by its numeric user id.")}
        else:
            field.label = _("New e-mail address")
            field.widget.input_type = "email"
            field.widget.attrs.update({"autocomplete": "email", "autocapitalize": "none", "spellcheck": "false"})
            field.error_messages = {"required": _("Enter an e-mail address."),
                                    "max_length": _("This e-mail address is too long.")}

    def clean_value(self):
        parse = {ContactKind.MOBILE: parse_mobile, ContactKind.X: parse_x_user_id}.get(self.kind, parse_email)
        return parse(self.cleaned_data["value"])


class CancelForm(LoginForm):
    confirm = forms.BooleanField(
        label=_("I understand that my Digital Mobile Key will be cancelled for good and cannot be used again."),
        error_messages={"required": _("Tick the box to confirm that you want to cancel your key.")},
    )

    def __init__(self, *args, ask_pin: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if ask_pin:
            self.fields["pin"] = copy.deepcopy(PinForm.base_fields["pin"])

    def clean_pin(self):
        return PinForm.clean_pin(self)
