"""The Demo Portal's own words, in Portuguese and English (it has no translation machinery of its
own: a portal integrating with Chave brings its own pages and languages)."""

from __future__ import annotations

LANGUAGES = ("pt", "en")
DEFAULT_LANGUAGE = "pt"
HTML_LANG = {"pt": "pt-PT", "en": "en"}
# What Chave is asked to show its pages in (OpenID Connect ``ui_locales``).
UI_LOCALES = {"pt": "pt-PT", "en": "en"}
# Each language's name in itself, for the language switch.
NAMES = {"pt": "Português", "en": "English"}

CLAIM_PREFIX = "http://interop.gov.pt/MDC/Cidadao/"

WORDS = {
    "pt": {
        "portal": "Portal de Demonstração",
        "language": "Idioma",
        "intro": "Este pequeno portal não faz parte da Chave: é um portal à parte, como o de um serviço "
                 "público, onde se entra com a Chave Móvel Digital. Depois de entrar mostra o que a "
                 "Chave lhe enviou sobre si.",
        "login": "Entrar com a Chave",
        "login_hint": "Vai para a página da Chave: PIN, código de segurança e autorização dos dados.",
        "signed_in": "Sessão iniciada no Portal de Demonstração",
        "hello": "Olá, {name}.",
        "hello_anonymous": "Olá.",
        "how": "Como entrou",
        "claims": "Os dados que a Chave partilhou",
        "claims_hint": "Recebidos do ponto userinfo da Chave, depois de verificado o token de identidade.",
        "status": "Estado de cada atributo pedido",
        "subject": "O seu identificador neste portal (sub)",
        "level": "Nível de garantia (acr)",
        "level_value": "nível {level}",
        "methods": "Métodos de autenticação (amr)",
        "auth_time": "Hora da autenticação (auth_time)",
        "session": "Sessão na Chave (sid)",
        "available": "partilhado",
        "withheld": "recusado por si",
        "not_available": "não disponível",
        "yes": "sim",
        "no": "não",
        "logout": "Terminar sessão",
        "logout_hint": "Termina a sessão neste portal e na Chave.",
        "signed_out": "Terminou a sessão",
        "signed_out_text": "Saiu do Portal de Demonstração.",
        "back": "Voltar ao início",
        "try_again": "Tentar de novo",
        "denied_title": "Não entrou",
        "denied": "Escolheu não entrar no Portal de Demonstração com a Chave.",
        "not_started_title": "Esta entrada não é válida",
        "not_started": "Esta entrada não foi iniciada aqui, ou demorou demasiado tempo. Tente de novo.",
        "failed_title": "Não foi possível entrar",
        "failed": "A Chave não deixou concluir a entrada ({detail}).",
        "invalid": "A resposta da Chave não passou as verificações deste portal ({detail}).",
        "unreachable_title": "A Chave não responde",
        "unreachable": "Não foi possível contactar a Chave em {issuer}. Tente de novo daqui a pouco.",
        "not_found_title": "Página não encontrada",
        "not_found": "Esta página não existe neste portal.",
        "bad_method": "Este endereço não aceita este pedido.",
        "expired_form": "O formulário expirou. Tente de novo.",
        "demo_only": "Apenas para demonstração: não é um serviço público real.",
        "saml_portal": "Portal SAML de Demonstração",
        "saml_intro": "Este pequeno portal não faz parte da Chave: é feito como os portais que usam a "
                      "Autenticação.gov, com SAML 2.0. Pede à Chave o nível de garantia que escolher "
                      "(fa:FAAALevel) e os atributos abaixo (fa:RequestedAttributes), num pedido assinado.",
        "saml_level_legend": "Nível de garantia a pedir",
        "saml_level_2": "Nível 2: PIN e código por e-mail",
        "saml_level_3": "Nível 3: PIN e código por SMS",
        "saml_level_4": "Nível 4: Cartão de Cidadão",
        "saml_asks": "O portal pede:",
        "saml_required": "obrigatório",
        "saml_optional": "opcional",
        "saml_login_hint": "Vai para a página da Chave: autenticação ao nível escolhido e autorização dos dados.",
        "saml_signed_in": "Sessão iniciada no Portal SAML de Demonstração",
        "saml_level": "Nível de garantia (AuthnContextClassRef)",
        "saml_auth_instant": "Hora da autenticação (AuthnInstant)",
        "saml_name_id": "O seu identificador neste portal (NameID)",
        "saml_session_index": "Sessão na Chave (SessionIndex)",
        "saml_attributes": "Os atributos que a Chave enviou",
        "saml_attributes_hint": "Lidos da asserção assinada, depois de verificada por este portal, com o estado "
                                "de cada atributo pedido (fa:AttributeStatus).",
        "saml_logout_hint": "Termina a sessão neste portal e na Chave (pedido de fim de sessão SAML assinado).",
        "saml_signed_out_text": "Saiu do Portal SAML de Demonstração e da Chave.",
        "saml_denied": "Escolheu não entrar no Portal SAML de Demonstração com a Chave.",
        "claim_names": {
            "name": "Nome completo",
            "given_name": "Nomes próprios",
            "family_name": "Apelidos",
            "birthdate": "Data de nascimento",
            "email": "Endereço de e-mail",
            "email_verified": "E-mail confirmado",
            "phone_number": "Número de telemóvel",
            "phone_number_verified": "Telemóvel confirmado",
            "NIC": "Número de identificação civil (NIC)",
            "NIF": "Número de identificação fiscal (NIF)",
            "DocType": "Tipo de documento estrangeiro",
            "DocNationality": "País do documento estrangeiro",
            "DocNumber": "Número do documento estrangeiro",
            "TemAssinaturaDigitalCMD": "Assinatura digital ativa",
            "DataValidade": "Chave válida até",
            "NomeCompleto": "Nome completo",
            "NomeProprio": "Nomes próprios",
            "NomeApelido": "Apelidos",
            "DataNascimento": "Data de nascimento",
            "NumeroTelemovel": "Número de telemóvel",
            "CorreioElectronico": "Endereço de e-mail",
        },
    },
    "en": {
        "portal": "Demo Portal",
        "language": "Language",
        "intro": "This small portal is not part of Chave: it is a separate portal, like a public "
                 "service's, that citizens log in to with the Digital Mobile Key. Once you are in, it "
                 "shows what Chave sent it about you.",
        "login": "Log in with Chave",
        "login_hint": "Takes you to Chave's pages: PIN, security code and consent to share your data.",
        "signed_in": "Signed in to the Demo Portal",
        "hello": "Hello, {name}.",
        "hello_anonymous": "Hello.",
        "how": "How you signed in",
        "claims": "The data Chave shared",
        "claims_hint": "Received from Chave's userinfo endpoint, after the ID token was checked.",
        "status": "Status of each attribute asked for",
        "subject": "Your identifier at this portal (sub)",
        "level": "Assurance level (acr)",
        "level_value": "level {level}",
        "methods": "Authentication methods (amr)",
        "auth_time": "Time of authentication (auth_time)",
        "session": "Chave session (sid)",
        "available": "shared",
        "withheld": "refused by you",
        "not_available": "not available",
        "yes": "yes",
        "no": "no",
        "logout": "Log out",
        "logout_hint": "Ends your session at this portal and at Chave.",
        "signed_out": "You have logged out",
        "signed_out_text": "You left the Demo Portal.",
        "back": "Back to the start",
        "try_again": "Try again",
        "denied_title": "You did not log in",
        "denied": "You chose not to log in to the Demo Portal with Chave.",
        "not_started_title": "This login is not valid",
        "not_started": "This login was not started here, or it took too long. Please try again.",
        "failed_title": "The login could not be completed",
        "failed": "Chave did not let the login complete ({detail}).",
        "invalid": "Chave's answer did not pass this portal's checks ({detail}).",
        "unreachable_title": "Chave does not answer",
        "unreachable": "Chave could not be reached at {issuer}. Please try again in a moment.",
        "not_found_title": "Page not found",
        "not_found": "There is no such page on this portal.",
        "bad_method": "This address does not accept this request.",
        "expired_form": "The form has expired. Please try again.",
        "demo_only": "Demonstration only: not a real public service.",
        "saml_portal": "SAML Demo Portal",
        "saml_intro": "This small portal is not part of Chave: it is built like the portals that use "
                      "autenticacao.gov, with SAML 2.0. It asks Chave for the assurance level you choose "
                      "(fa:FAAALevel) and for the attributes below (fa:RequestedAttributes), in a signed request.",
        "saml_level_legend": "Assurance level to ask for",
        "saml_level_2": "Level 2: PIN and a code by e-mail",
        "saml_level_3": "Level 3: PIN and a code by SMS",
        "saml_level_4": "Level 4: Citizen Card",
        "saml_asks": "The portal asks for:",
        "saml_required": "required",
        "saml_optional": "optional",
        "saml_login_hint": "Takes you to Chave's pages: sign-in at the level chosen and consent to share your data.",
        "saml_signed_in": "Signed in to the SAML Demo Portal",
        "saml_level": "Assurance level (AuthnContextClassRef)",
        "saml_auth_instant": "Time of authentication (AuthnInstant)",
        "saml_name_id": "Your identifier at this portal (NameID)",
        "saml_session_index": "Chave session (SessionIndex)",
        "saml_attributes": "The attributes Chave sent",
        "saml_attributes_hint": "Read from the signed assertion once this portal checked it, with the status of "
                                "each attribute asked for (fa:AttributeStatus).",
        "saml_logout_hint": "Ends your session at this portal and at Chave (a signed SAML logout request).",
        "saml_signed_out_text": "You left the SAML Demo Portal and Chave.",
        "saml_denied": "You chose not to log in to the SAML Demo Portal with Chave.",
        "claim_names": {
            "name": "Full name",
            "given_name": "Given names",
            "family_name": "Family names",
            "birthdate": "Date of birth",
            "email": "E-mail address",
            "email_verified": "E-mail confirmed",
            "phone_number": "Mobile number",
            "phone_number_verified": "Mobile number confirmed",
            "NIC": "Civil identification number (NIC)",
            "NIF": "Tax number (NIF)",
            "DocType": "Type of foreign document",
            "DocNationality": "Country of the foreign document",
            "DocNumber": "Number of the foreign document",
            "TemAssinaturaDigitalCMD": "Digital signature active",
            "DataValidade": "Key valid until",
            "NomeCompleto": "Full name",
            "NomeProprio": "Given names",
            "NomeApelido": "Family names",
            "DataNascimento": "Date of birth",
            "NumeroTelemovel": "Mobile number",
            "CorreioElectronico": "E-mail address",
        },
    },
}


def say(lang: str, word: str, **params) -> str:
    text = WORDS[lang][word]
    return text.format(**params) if params else text


def claim_label(lang: str, claim: str) -> str:
    """A claim's name for people: standard claims and the autenticacao.gov URIs by their short name."""
    names = WORDS[lang]["claim_names"]
    short = claim[len(CLAIM_PREFIX):] if claim.startswith(CLAIM_PREFIX) else claim
    return names.get(short, claim)


def choose_language(query_lang: str | None, cookie_lang: str | None, accept_language: str) -> str:
    """``?lang=`` first, then the remembered choice, then the browser's ``Accept-Language``
    (highest weight first), then Portuguese."""
    for choice in (query_lang, cookie_lang):
        if choice in LANGUAGES:
            return choice
    ranked = []
    for position, part in enumerate(accept_language.split(",")):
        tag, _sep, params = part.strip().partition(";")
        weight = 1.0
        for param in params.split(";"):
            name, _eq, value = param.strip().partition("=")
            if name == "q":
                try:
                    weight = float(value)
                except ValueError:
                    weight = 0.0
        ranked.append((-weight, position, tag.strip().lower()))
    for weight, _position, tag in sorted(ranked):
        primary = tag.split("-")[0]
        if weight < 0 and primary in LANGUAGES:
            return primary
    return DEFAULT_LANGUAGE
