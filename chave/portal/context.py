from chave.login.services import signed_in


def personal_area(request):
    """Whether the header offers the personal area (someone is signed in in this browser)."""
    return {"area_signed_in": signed_in(request) is not None}
