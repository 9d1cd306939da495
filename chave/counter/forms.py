"""Counter forms: what staff type, with a message tied to each field."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from chave.forms import AccessibleForm
from chave.identity.models import DocType

from .models import LetterDelivery
from .services import Presented


class JSONTextField(forms.JSONField):
    """Django's JSONField, which turns only JSON syntax errors into "Enter a valid JSON.": the same
    answer for what Python's parser refuses otherwise (an integer of more than 4,300 digits, nesting
    too deep), instead of a server error on reading or on showing the form again."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except (ValueError, RecursionError):
            raise forms.ValidationError(self.error_messages["invalid"], code="invalid",
                                        params={"value": value}) from None

    def bound_data(self, data, initial):
        try:
            return super().bound_data(data, initial)
        except (ValueError, RecursionError):
            return forms.fields.InvalidJSONInput(data)

    def prepare_value(self, value):
        # Django writes an empty field as JSON's "null", which the box would then show.
        return "" if value is None else super().prepare_value(value)


class StaffSignInForm(AccessibleForm):
    username = forms.CharField(label=_("Username"), max_length=150,
                               widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none"}),
                               error_messages={"required": _("Enter your username.")})
    password = forms.CharField(label=_("Password"), strip=False, max_length=200,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
                               error_messages={"required": _("Enter your password.")})
    code = forms.CharField(label=_("Authenticator code"), max_length=10,
                           help_text=_("The 6 digits your authenticator app shows now."),
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
                           error_messages={"required": _("Enter the code of your authenticator app.")})


class FindForm(AccessibleForm):
    q = forms.CharField(label=_("NIC, mobile number, e-mail or name"), max_length=254, required=False)
    doc_type = forms.ChoiceField(label=_("Or a foreign document: type"), required=False,
                                 choices=[("", "—")] + [(t.value, t.label) for t in DocType if t != DocType.CITIZEN_CARD])
    doc_country = forms.CharField(label=_("Issuing country (2 letters)"), max_length=2, required=False)
    doc_number = forms.CharField(label=_("Document number"), max_length=32, required=False)


class PresentedForm(AccessibleForm):
    """The document the citizen presented and the reason: asked for by every action."""

    legend = _("Document presented by the citizen")
    new_number = False  # the document presented is the citizen's renewed one, with a new number

    presented_type = forms.ChoiceField(label=_("Document presented"), choices=DocType.choices,
                                       error_messages={"required": _("Choose the document presented.")})
    presented_country = forms.CharField(label=_("Issuing country (2 letters)"), max_length=2, initial="PT",
                                        error_messages={"required": _("Give the issuing country.")})
    presented_number = forms.CharField(label=_("Document number"), max_length=32,
                                       error_messages={"required": _("Give the document's number.")})
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             help_text=_("What the citizen asked for and why, in a few words."),
                             error_messages={"required": _("Give the reason: what the citizen asked for and why.")})

    def __init__(self, *args, citizen=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.citizen = citizen

    def clean(self):
        """Every problem at once: the fields' own, then the document and the reason checked against
        the citizen (:func:`~.services.check_presented`), each on its field."""
        from .services import check_presented

        data = super().clean()
        if self.citizen is not None:
            try:
                check_presented(self.citizen, Presented(*(data.get(name, "") for name in PRESENTED_FIELDS)),
                                new_number=self.new_number)
            except forms.ValidationError as error:
                for name, problems in error.error_dict.items():
                    if name not in self.errors:
                        self.add_error(name, problems)
        return data

    def presented(self) -> Presented:
        d = self.cleaned_data
        return Presented(*(d[name] for name in PRESENTED_FIELDS))


PRESENTED_FIELDS = ("presented_type", "presented_country", "presented_number", "reason")


class NewPinForm(PresentedForm):
    delivery = forms.ChoiceField(label=_("Delivery"), widget=forms.RadioSelect, initial="post",
                                 choices=LetterDelivery.choices)
    address = forms.CharField(label=_("Postal address"), max_length=400, required=False,
                              help_text=_("Street, postcode and town, one per line, as on the envelope."),
                              widget=forms.Textarea(attrs={"rows": 4}))

    def __init__(self, *args, **kwargs):
        from .printers import counter_printer

        super().__init__(*args, **kwargs)
        if counter_printer() is None:  # no PIN-mailer printer: by post only
            self.fields["delivery"].choices = [c for c in LetterDelivery.choices if c[0] == LetterDelivery.POST]

    def clean(self):
        data = super().clean()
        if data.get("delivery") == LetterDelivery.POST and not data.get("address"):
            self.add_error("address", _("Give the postal address."))
        return data


class RenewalForm(PresentedForm):
    document_expiry = forms.DateField(
        label=_("The renewed document is valid until"), widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("As printed on the renewed document."),
        error_messages={"required": _("Give the date the renewed document is valid until."),
                        "invalid": _("Give the date as on the document, for example 14/03/2031.")})


class NewDocumentForm(RenewalForm):
    """A foreign resident's renewed document with a new number: the document presented is the new
    one; the clerk confirms it is the same person's."""

    legend = _("The renewed document presented by the citizen")
    new_number = True
    same_person = forms.BooleanField(
        error_messages={"required": _("Check the name and date of birth on the renewed document, then tick the "
                                      "box.")})

    def __init__(self, *args, citizen=None, **kwargs):
        from chave import formats

        super().__init__(*args, citizen=citizen, **kwargs)
        self.fields["presented_type"].choices = [c for c in DocType.choices if c[0] != DocType.CITIZEN_CARD]
        self.fields["presented_number"].label = _("New document number")
        if citizen is not None:
            self.fields["same_person"].label = _(
                "The renewed document is of %(name)s, born on %(birth)s, as on the document on record") % {
                    "name": citizen.full_name, "birth": formats.day(citizen.birth_date)}


class ReasonForm(AccessibleForm):
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": _("Say why.")})


# --- Relying-party administration ------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return [line.strip() for line in (text or "").splitlines() if line.strip()]


# How a portal proves who it is at the token endpoint, in words, the protocol's name beside them.
AUTH_METHODS = {
    "private_key_jwt": _("Signed with the portal's private key (private_key_jwt)"),
    "client_secret_basic": _("Client secret (client_secret_basic)"),
}


def _attribute_choices():
    from chave.federation.attributes import ATTRIBUTES

    return [(a.name, a.label) for a in ATTRIBUTES.values()]


class RelyingPartyRequestForm(AccessibleForm):
    """A portal's request to integrate; field names are the registry's, so its errors land here."""

    name = forms.CharField(label=_("Entity name"), max_length=200)
    entity_nif = forms.CharField(label=_("Entity's tax number (NIF)"), max_length=11)
    contact_email = forms.CharField(label=_("Contact e-mail"), max_length=254)
    redirect_uris = forms.CharField(label=_("Redirect URIs (one per line)"), widget=forms.Textarea(attrs={"rows": 2}))
    post_logout_redirect_uris = forms.CharField(label=_("Post-logout redirect URIs (one per line)"), required=False,
                                                widget=forms.Textarea(attrs={"rows": 2}))
    backchannel_logout_uri = forms.CharField(label=_("Back-channel logout URI"), required=False, max_length=500)
    allowed_attributes = forms.MultipleChoiceField(label=_("Attributes it may ask for"), required=False,
                                                   widget=forms.CheckboxSelectMultiple, choices=_attribute_choices)
    mandatory_attributes = forms.MultipleChoiceField(label=_("Mandatory attributes"), required=False,
                                                     widget=forms.CheckboxSelectMultiple, choices=_attribute_choices)
    min_level = forms.TypedChoiceField(label=_("Minimum assurance level"), coerce=int, initial=2,
                                       choices=[(2, "2"), (3, "3"), (4, "4")])
    auth_method = forms.ChoiceField(label=_("Client authentication"), choices=list(AUTH_METHODS.items()))
    jwks_uri = forms.CharField(label=_("JWKS URI (private_key_jwt)"), required=False, max_length=500)
    jwks = JSONTextField(label=_("Or the JWKS itself (JSON)"), required=False,
                         widget=forms.Textarea(attrs={"rows": 3}))
    sector_identifier = forms.CharField(label=_("Sector identifier (host)"), required=False, max_length=255)
    subject_type = forms.ChoiceField(label=_("Subject type"), choices=[
        ("pairwise", _("Pairwise: each sector gets its own identifier for a citizen (pairwise)")),
        ("public", _("Public: every portal gets the same identifier (public)"))])
    id_token_alg = forms.ChoiceField(label=_("ID token algorithm"), choices=[("RS256", "RS256"), ("ES256", "ES256")])
    sector_identifier_uri = forms.CharField(
        label=_("Sector identifier URI"), required=False, max_length=500,
        help_text=_("For redirect URIs on several hosts: an https address of the portal's that lists all of them "
                    "(JSON). It is read when the portal is approved; its host is the sector."))
    frontchannel_logout_uri = forms.CharField(label=_("Front-channel logout URI"), required=False, max_length=500)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields.update(_client_settings_fields())

    def registration(self) -> dict:
        d = dict(self.cleaned_data)
        d["redirect_uris"] = _lines(d["redirect_uris"])
        d["post_logout_redirect_uris"] = _lines(d["post_logout_redirect_uris"])
        return d


def _client_settings_fields(*, existing: bool = False) -> dict:
    """The OpenID Connect settings of :class:`chave.oidc.models.ClientSettings` as form fields, named
    as :func:`chave.oidc.services.set_client_settings` takes them."""
    fields = {
        "profile": forms.TypedChoiceField(label=_("Security profile"), required=False, empty_value="oidc", choices=[
            ("oidc", "OpenID Connect"), ("fapi2", _("FAPI 2.0 (pushed requests, DPoP, private_key_jwt, ES256)"))]),
        "offline_access": forms.BooleanField(label=_("Refresh tokens when the portal asks for offline_access"),
                                             required=False),
        "resource_server": forms.BooleanField(label=_("Resource server: may introspect access tokens"),
                                              required=False),
        "require_pushed_authorization_requests": forms.BooleanField(
            label=_("Must push its authorization requests (PAR)"), required=False),
        "require_dpop": forms.BooleanField(label=_("Must bind its tokens to its key (DPoP)"), required=False),
    }
    if existing:
        fields["always_refresh"] = forms.BooleanField(
            label=_("A refresh token with every sign-in, asked for or not (portals registered before these "
                    "settings)"), required=False)
    return fields


class ClientSettingsForm(AccessibleForm):
    """A portal's OpenID Connect settings, changed at the counter (with a reason, kept in its history)."""

    sector_identifier_uri = forms.CharField(
        label=_("Sector identifier URI"), required=False, max_length=500,
        help_text=_("On the portal's sector; read at once when the portal is approved. Empty to remove."))
    frontchannel_logout_uri = forms.CharField(label=_("Front-channel logout URI"), required=False, max_length=500,
                                              help_text=_("Empty to remove."))
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": _("Say why.")})

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        fields = _client_settings_fields(existing=True)
        fields.update(self.fields)
        self.fields = fields

    @classmethod
    def for_party(cls, settings_row, **kwargs) -> "ClientSettingsForm":
        initial = {name: getattr(settings_row, name) for name in (
            "profile", "offline_access", "always_refresh", "resource_server", "require_pushed_authorization_requests",
            "require_dpop", "sector_identifier_uri", "frontchannel_logout_uri")}
        return cls(initial=initial, **kwargs)

    def changes(self) -> dict:
        return {name: value for name, value in self.cleaned_data.items() if name != "reason"}


class DecisionForm(AccessibleForm):
    decision = forms.ChoiceField(choices=[("approve", _("Approve")), ("suspend", _("Suspend"))],
                                 widget=forms.HiddenInput)
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": _("Say why.")})


class KeysForm(AccessibleForm):
    jwks_uri = forms.CharField(label=_("JWKS URI"), required=False, max_length=500)
    jwks = JSONTextField(label=_("Or the JWKS itself (JSON)"), required=False,
                         widget=forms.Textarea(attrs={"rows": 3}))
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": _("Say why.")})


class SamlMetadataForm(AccessibleForm):
    """A SAML service provider's new metadata (a new certificate, new addresses)."""

    metadata = forms.CharField(label=_("The service provider's new metadata (XML)"), max_length=512 * 1024,
                               widget=forms.Textarea(attrs={"rows": 6}),
                               error_messages={"required": _("Paste the metadata.")})
    reason = forms.CharField(label=_("Reason"), max_length=500, widget=forms.Textarea(attrs={"rows": 2}),
                             error_messages={"required": _("Say why.")})


# --- Registration, contacts, the citizen screen ------------------------------------------------


class RegisterForm(AccessibleForm):
    """A registration at the counter: the document checked, the contacts, how the PIN is given.

    Portuguese citizens: the NIC (identity from the civil registry). Foreigners: the document and
    the identity data read from it, with the NIF.
    """

    nationality = forms.ChoiceField(label=_("Citizen"), widget=forms.RadioSelect, initial="pt",
                                    choices=[("pt", _("Portuguese, with the Citizen Card")),
                                             ("foreign", _("Foreigner, with a passport or residence document"))])
    nic = forms.CharField(label=_("NIC (civil identification number)"), max_length=20, required=False)
    doc_type = forms.ChoiceField(label=_("Foreign document"), required=False,
                                 choices=[("", "—")] + [(t.value, t.label) for t in DocType if t != DocType.CITIZEN_CARD])
    doc_country = forms.CharField(label=_("Issuing country (2 letters)"), max_length=2, required=False)
    doc_number = forms.CharField(label=_("Document number"), max_length=32, required=False)
    nif = forms.CharField(label=_("NIF (tax number)"), max_length=11, required=False)
    full_name = forms.CharField(label=_("Full name, as on the document"), max_length=200, required=False)
    given_name = forms.CharField(label=_("Given names"), max_length=100, required=False)
    family_name = forms.CharField(label=_("Family names"), max_length=100, required=False)
    birth_date = forms.DateField(label=_("Date of birth"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    document_expiry = forms.DateField(label=_("Document valid until"), required=False,
                                      widget=forms.DateInput(attrs={"type": "date"}))
    mobile = forms.CharField(label=_("Mobile number"), max_length=32, required=False)
    email = forms.CharField(label=_("E-mail address"), max_length=254, required=False)
    pin_by = forms.ChoiceField(label=_("PIN"), widget=forms.RadioSelect, initial="screen",
                               choices=[("screen", _("The citizen chooses it on the citizen screen")),
                                        ("letter", _("A temporary PIN by letter"))])
    address = forms.CharField(label=_("Postal address (PIN by letter)"), max_length=400, required=False,
                              widget=forms.Textarea(attrs={"rows": 3}))
    reason = forms.CharField(label=_("Reason"), max_length=500, initial=_("New key requested at the counter"),
                             widget=forms.Textarea(attrs={"rows": 2}))
    terms = forms.BooleanField(label=_("The citizen has read the terms of use and accepts them"),
                               error_messages={"required": _("The citizen must accept the terms of use: give them "
                                                             "the terms to read, and tick the box once they accept.")})

    def clean(self):
        from chave.identity.validation import (
            parse_country,
            parse_doc_number,
            parse_name,
            parse_nic,
            parse_nif,
        )

        data = super().clean()

        def parse(name, function):
            try:
                data[name] = function(data.get(name) or "")
            except forms.ValidationError as error:
                self.add_error(name, error)

        if data.get("nationality") == "foreign":
            if not data.get("doc_type"):
                self.add_error("doc_type", _("Choose the type of document."))
            parse("doc_country", parse_country)
            parse("doc_number", parse_doc_number)
            parse("nif", parse_nif)
            parse("full_name", lambda text: parse_name(text, max_length=200))
            for name in ("given_name", "family_name"):
                parse(name, parse_name)
            for name in ("birth_date", "document_expiry"):
                if not data.get(name):
                    self.add_error(name, _("Give the date as on the document."))
        else:
            parse("nic", parse_nic)
        if not (data.get("mobile") or data.get("email")):
            self.add_error("mobile", _("Give a mobile number or an e-mail address (or both)."))
        return data


class ContactChangeForm(PresentedForm):
    kind = forms.ChoiceField(label=_("Contact"), choices=[("mobile", _("Mobile number")),
                                                          ("email", _("E-mail address"))])
    value = forms.CharField(label=_("New mobile number or e-mail address"), max_length=254,
                            error_messages={"required": _("Give the new contact.")})

    def __init__(self, *args, **kwargs):
        from chave.delivery.providers import enabled_channels

        super().__init__(*args, **kwargs)
        if "x" in enabled_channels():  # codes by X direct message: the citizen's X account, by its user id
            self.fields["kind"].choices = [*self.fields["kind"].choices, ("x", _("X account (user id)"))]
            self.fields["value"].label = _("New mobile number, e-mail address or X user id")


class ScreenCodeForm(AccessibleForm):
    code = forms.CharField(label=_("Security code"), max_length=12,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
                           error_messages={"required": _("Type the code you received.")})


class ScreenPinForm(AccessibleForm):
    pin = forms.CharField(label=_("Your new PIN"), strip=False, max_length=20,
                          widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "new-password"}),
                          error_messages={"required": _("Type your new PIN.")})
    pin_again = forms.CharField(label=_("The same PIN again"), strip=False, max_length=20,
                                widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "new-password"}),
                                error_messages={"required": _("Type your new PIN again.")})


class ScreenSigningPinForm(ScreenPinForm):
    pin = forms.CharField(label=_("Your new signing PIN"), strip=False, max_length=20,
                          widget=forms.PasswordInput(attrs={"inputmode": "numeric", "autocomplete": "new-password"}),
                          error_messages={"required": _("Type your new signing PIN.")})
    pin_again = forms.CharField(label=_("The same signing PIN again"), strip=False, max_length=20,
                                widget=forms.PasswordInput(attrs={"inputmode": "numeric",
                                                                  "autocomplete": "new-password"}),
                                error_messages={"required": _("Type your new signing PIN again.")})
