"""The Chave app's page forms: a device's name, and a clerk's reason to remove one."""

from django import forms
from django.utils.translation import gettext_lazy as _

from chave import policy
from chave.login.forms import LoginForm


class DeviceNameForm(LoginForm):
    name = forms.CharField(
        label=_("Name of the device"),
        help_text=_("So that you can tell your devices apart, such as “Ana's phone”."),
        max_length=200,
        error_messages={"required": _("Give the device a name."),
                        "max_length": _("The name is too long.")},
    )

    def clean_name(self):
        name = " ".join(self.cleaned_data["name"].split())
        limit = policy.get("app_device_name_max_length")
        if not name.isprintable():
            raise forms.ValidationError(_("Give the device a name."), code="invalid_name")
        if len(name) > limit:
            raise forms.ValidationError(_("The name is too long (at most %(n)d characters).") % {"n": limit},
                                        code="invalid_name")
        return name
